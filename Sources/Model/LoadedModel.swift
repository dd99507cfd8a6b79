/// A base model as lorad serves it: the weights, the tokenizer and the chat template, all read
/// from one GGUF file.
public final class LoadedModel: Sendable {
  public let file: GGUFFile
  public let model: LlamaModel
  public let tokenizer: Tokenizer
  /// nil when the file has no chat template or one lorad does not know; `chatPrompt` then throws.
  public let template: ChatTemplate?
  private let templateError: ModelError?
  /// Whether the model wants BOS in front of a text (tokenizer.ggml.add_bos_token).
  public let addsBOS: Bool

  public init(path: String) throws {
    file = try GGUFFile(path: path)
    model = try LlamaModel(file: file)
    let tc = try TokenizerConfig(gguf: file)
    tokenizer = try Tokenizer(tc)
    addsBOS = tc.addBOS
    if let t = file["tokenizer.chat_template"]?.string {
      do {
        template = try ChatTemplate(template: t)
        templateError = nil
      } catch let e as ModelError {
        template = nil
        templateError = e
      }
    } else {
      template = nil
      templateError = .invalidArgument("\(path) has no chat template; use --raw and format the prompt yourself")
    }
  }

  /// Just the tokenizer of a model file (no weights checked).
  public static func tokenizerOnly(path: String) throws -> Tokenizer {
    try Tokenizer(TokenizerConfig(gguf: try GGUFFile(path: path)))
  }

  /// The token ids of `messages` rendered with the model's chat template, ready to generate.
  public func chatPrompt(_ messages: [ChatMessage]) throws -> [Int32] {
    guard let template else { throw templateError! }
    return tokenizer.encode(template.render(messages), addSpecial: true, parseSpecial: true)
  }
}
