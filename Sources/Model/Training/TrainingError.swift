/// Errors of the training path (log-probabilities, gradients, optimizer state) a caller can act on.
public enum TrainingError: Error, CustomStringConvertible {
  case badLayout(String)
  case badSequence(String)
  case layoutMismatch(String)
  case badOptimizerState(path: String, reason: String)

  public var description: String {
    switch self {
    case .badLayout(let m): return "bad LoRA layout: \(m)"
    case .badSequence(let m): return "bad training sequence: \(m)"
    case .layoutMismatch(let m): return "LoRA layout mismatch: \(m)"
    case .badOptimizerState(let p, let r):
      return "\(p): optimizer state unreadable: \(r); delete it to restart the optimizer from zero moments"
    }
  }
}
