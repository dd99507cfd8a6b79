/// Errors of the model layer that a user can act on.
public enum ModelError: Error, CustomStringConvertible {
  case unsupportedArchitecture(path: String, arch: String)
  case badHyperParameters(path: String, reason: String)
  case contextOverflow(tokens: Int, limit: Int)
  case unknownChatTemplate(String)
  case invalidArgument(String)

  public var description: String {
    switch self {
    case .unsupportedArchitecture(let p, let a):
      return
        "\(p): architecture '\(a)' is not supported (lorad runs: \(LlamaConfig.architectures.joined(separator: ", ")))"
    case .badHyperParameters(let p, let r): return "\(p): bad hyper-parameters: \(r)"
    case .contextOverflow(let n, let l):
      return "the prompt and completion need \(n) tokens but the context holds \(l); shorten the prompt or raise --ctx"
    case .unknownChatTemplate(let t):
      return
        "the model's chat template is not one lorad knows (ChatML, Llama-3); use --raw and format the prompt yourself. Template starts: \(t.prefix(120))"
    case .invalidArgument(let m): return m
    }
  }
}
