import Foundation

/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
  public var role: String
  public var content: String
  public init(role: String, content: String) {
    self.role = role
    self.content = content
  }
}

/// The chat formats lorad renders, recognized from the model's `tokenizer.chat_template`
/// text. lorad does not run Jinja: a template it does not recognize is an error, never a
/// silently wrong prompt.
public enum ChatTemplate: Sendable, Equatable {
  /// `<|im_start|>role\ncontent<|im_end|>\n`, with the system message the template inserts
  /// when the conversation has none (SmolLM2's does).
  case chatML(defaultSystem: String?)
  /// Llama 3: `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`; content trimmed;
  /// BOS is added by the tokenizer.
  case llama3

  public init(template: String) throws {
    if template.contains("<|im_start|>") {
      self = .chatML(defaultSystem: Self.defaultSystem(in: template))
    } else if template.contains("<|start_header_id|>") && template.contains("<|eot_id|>") {
      self = .llama3
    } else {
      throw ModelError.unknownChatTemplate(template)
    }
  }

  /// The literal system message a ChatML template inserts when the first message is not a
  /// system message, e.g. `'<|im_start|>system\nYou are …<|im_end|>\n'`.
  static func defaultSystem(in t: String) -> String? {
    guard t.contains("!= 'system'") || t.contains("!= \"system\"") else { return nil }
    let marker = "<|im_start|>system\n"
    guard let start = t.range(of: marker) else { return nil }
    let rest = t[start.upperBound...]
    guard let end = rest.range(of: "<|im_end|>") else { return nil }
    let text = String(rest[..<end.lowerBound])
    // The literal must be plain text, not a Jinja expression.
    if text.contains("{{") || text.contains("{%") || text.contains("'") || text.contains("+") { return nil }
    return text
  }

  /// The prompt text for `messages`, ending with the assistant's turn when `addGenerationPrompt`.
  public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
    var out = ""
    switch self {
    case .chatML(let sys):
      if let sys, messages.first?.role != "system" {
        out += "<|im_start|>system\n\(sys)<|im_end|>\n"
      }
      for m in messages { out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
      if addGenerationPrompt { out += "<|im_start|>assistant\n" }
    case .llama3:
      for m in messages {
        out += "<|start_header_id|>\(m.role)<|end_header_id|>\n\n"
        out += m.content.trimmingCharacters(in: .whitespacesAndNewlines)
        out += "<|eot_id|>"
      }
      if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
    }
    return out
  }
}
