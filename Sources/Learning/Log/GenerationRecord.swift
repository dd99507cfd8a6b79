import Foundation
import Model

/// One finished generation as the log keeps it: who asked, which adapter version served it,
/// the exact prompt and completion (text and token ids), the serving policy's log-probability
/// of each completion token, how it was sampled and why it ended. The learner trains on these
/// rows; a feedback event rates one of them by `request`.
public struct GenerationRecord: Sendable, Equatable {
  /// The sampling settings in force (after defaults were applied), as the request named them.
  public struct Sampling: Sendable, Equatable {
    /// 0 is greedy.
    public var temperature: Double
    public var topP: Double
    /// 0 means off.
    public var topK: Int
    public var seed: UInt64
    public var maxTokens: Int
    public var stop: [String]

    public init(
      temperature: Double, topP: Double, topK: Int, seed: UInt64, maxTokens: Int, stop: [String] = []
    ) {
      self.temperature = temperature
      self.topP = topP
      self.topK = topK
      self.seed = seed
      self.maxTokens = maxTokens
      self.stop = stop
    }
  }

  /// The server-assigned id (`r-…`) the client rates by; unique in the log.
  public var request: String
  /// When the generation finished.
  public var time: Date
  /// The authenticated identity that asked, or nil when keys are off.
  public var who: String?
  /// The adapter that served it, nil for the base model alone.
  public var adapter: String?
  /// The adapter's exact version; nil exactly when `adapter` is nil.
  public var version: Int?
  /// The exact text the model was conditioned on (chat template already applied).
  public var prompt: String
  /// (prompt_len) the token ids of `prompt` as fed to the model.
  public var promptTokens: [Int32]
  public var completion: String
  /// (completion_len) the sampled token ids, end-of-generation token included when one was sampled.
  public var completionTokens: [Int32]
  /// (completion_len) log p(token | prefix) under the serving policy (base + adapter@version),
  /// one per completion token.
  public var logprobs: [Float]
  public var sampling: Sampling
  public var finish: FinishReason

  public init(
    request: String, time: Date = Date(), who: String? = nil, adapter: String? = nil, version: Int? = nil,
    prompt: String, promptTokens: [Int32], completion: String, completionTokens: [Int32], logprobs: [Float],
    sampling: Sampling, finish: FinishReason
  ) {
    self.request = request
    self.time = time
    self.who = who
    self.adapter = adapter
    self.version = version
    self.prompt = prompt
    self.promptTokens = promptTokens
    self.completion = completion
    self.completionTokens = completionTokens
    self.logprobs = logprobs
    self.sampling = sampling
    self.finish = finish
  }

  /// Refuses a record the log could not use: checked in `record(_:)`, before it is queued.
  func validate() throws {
    func bad(_ reason: String) -> FeedbackLogError { .invalidRecord(request: request, reason: reason) }
    if request.isEmpty { throw bad("the request id is empty") }
    if (adapter == nil) != (version == nil) {
      throw bad("adapter and version go together: both set for an adapter, both nil for the base model")
    }
    if logprobs.count != completionTokens.count {
      throw bad("\(logprobs.count) logprobs for \(completionTokens.count) completion tokens; give one per token")
    }
    if sampling.maxTokens < 0 || sampling.topK < 0 { throw bad("max_tokens and top_k must not be negative") }
  }
}
