/// How the next token is chosen from the logits. The defaults are llama.cpp's.
public struct SamplingOptions: Sendable, Equatable {
  /// 0 means greedy (argmax).
  public var temperature: Float = 0.8
  /// Keep the k most likely tokens; 0 keeps all.
  public var topK: Int = 40
  /// Keep the smallest set of tokens whose probabilities add up to p; 1 keeps all.
  public var topP: Float = 0.95
  /// Drop tokens whose probability is below minP × the top probability; 0 keeps all.
  public var minP: Float = 0.05
  /// Penalise tokens seen in the last `repeatLastN` tokens (1 = off), as llama.cpp does.
  public var repeatPenalty: Float = 1.0
  public var repeatLastN: Int = 64
  public var seed: UInt64 = 0

  public init() {}

  public static var greedy: SamplingOptions {
    var o = SamplingOptions()
    o.temperature = 0
    return o
  }

  /// Checks ranges; the message says which option and what is allowed.
  public func validate() throws {
    func bad(_ m: String) -> ModelError { .invalidArgument(m) }
    if !temperature.isFinite || temperature < 0 || temperature > 100 {
      throw bad("temperature must be in 0...100 (0 = greedy)")
    }
    if topK < 0 { throw bad("top_k must be 0 (off) or positive") }
    if !topP.isFinite || topP <= 0 || topP > 1 { throw bad("top_p must be in (0, 1]") }
    if !minP.isFinite || minP < 0 || minP >= 1 { throw bad("min_p must be in [0, 1)") }
    if !repeatPenalty.isFinite || repeatPenalty <= 0 || repeatPenalty > 10 {
      throw bad("repeat_penalty must be in (0, 10]")
    }
    if repeatLastN < 0 { throw bad("repeat_last_n must not be negative") }
  }
}
