import Adapters
import Foundation
import Model

/// One admitted request on the compute thread: its prompt, KV cache, sampler, adapters and
/// what it has produced so far. Touched only by the scheduler's compute thread.
final class LiveSequence {
  let job: GenerationJob
  let request: String
  let received: Date
  let receivedNanos: UInt64
  let promptText: String
  let prompt: [Int32]
  let cache: KVCache
  let sampler: Sampler
  /// The adapters' weighted sum (shared by every sequence of the same mix), nil for the base.
  let mix: AdapterMix?
  /// Orders rows so that sequences of one mix sit together (one LoRA run per mix).
  let mixKey: String
  let leases: [AdapterLease]
  let applied: [AppliedAdapter]
  /// Completion tokens allowed: min(max_tokens, context left after the prompt).
  let limit: Int
  let maxTokens: Int

  /// Prompt tokens fed so far.
  var fed = 0
  /// The token to feed next step once decoding (the last one sampled).
  var pending: Int32 = 0
  var decoder: StreamingDecoder
  var stopper: StopMatcher
  var tokens: [Int32] = []
  var logprobs: [Float] = []
  var text = ""
  var firstTokenNanos: UInt64?
  /// Set when a cancel (or a closed connection) reached it; it leaves at the next step.
  var cancelled = false
  /// Set when it has produced its last token; it leaves at the end of the step.
  private(set) var done = false
  private(set) var finishReason = FinishReason.length

  func markDone(_ reason: FinishReason) {
    done = true
    finishReason = reason
  }

  var decoding: Bool { fed == prompt.count }

  init(
    job: GenerationJob, request: String, received: Date, receivedNanos: UInt64, promptText: String, prompt: [Int32],
    cache: KVCache, tokenizer: Tokenizer, vocabSize: Int, mix: AdapterMix?, mixKey: String, leases: [AdapterLease],
    applied: [AppliedAdapter], maxTokens: Int
  ) {
    self.job = job
    self.request = request
    self.received = received
    self.receivedNanos = receivedNanos
    self.promptText = promptText
    self.prompt = prompt
    self.cache = cache
    self.mix = mix
    self.mixKey = mixKey
    self.leases = leases
    self.applied = applied
    self.maxTokens = maxTokens
    limit = min(maxTokens, cache.capacity - prompt.count)
    sampler = Sampler(vocabSize: vocabSize, options: job.sampling)
    for t in prompt { sampler.accept(t) }
    decoder = StreamingDecoder(tokenizer: tokenizer)
    stopper = StopMatcher(job.stop)
    tokens.reserveCapacity(limit)
    logprobs.reserveCapacity(limit)
  }

  /// The record of this generation as it ends with `finish`.
  func record(finish: FinishReason, now: UInt64) -> GenerationRecord {
    GenerationRecord(
      request: request, key: job.key, who: job.who, adapters: applied, promptText: promptText, promptTokens: prompt,
      completionText: text, completionTokens: tokens, logprobs: logprobs, sampling: job.sampling,
      maxTokens: maxTokens, stop: job.stop, finish: finish, received: received,
      firstTokenSeconds: firstTokenNanos.map { Double($0 - receivedNanos) / 1e9 },
      totalSeconds: Double(now - receivedNanos) / 1e9)
  }
}
