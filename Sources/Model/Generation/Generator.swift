import Foundation
import Tensor

/// Why a generation ended (the wire protocol's `finish`).
public enum FinishReason: String, Sendable, Codable {
  case stop, length, cancelled
}

/// What one generation produced.
public struct GenerationResult: Sendable {
  public var text: String
  public var tokens: [Int32]
  public var finish: FinishReason
  public var promptTokens: Int
  /// Seconds spent in prefill and in decode.
  public var prefillSeconds: Double
  public var decodeSeconds: Double
}

/// Generation for one sequence at a time on one `LlamaContext`: prefill in chunks of the
/// context's batch size, then token-by-token decode with sampling, streaming UTF-8-safe text
/// and honouring stop strings and end-of-generation tokens.
public final class Generator: @unchecked Sendable {  // owned by one compute thread
  /// Prompt tokens per forward step in `lorad generate` and in the daemon's scheduler: both feed a
  /// prompt in the same chunks, so a sequence's arithmetic is the same alone or served.
  public static let defaultPrefillChunk = 256
  public let context: LlamaContext
  public let tokenizer: Tokenizer
  private let batch: Batch
  public let cache: KVCache

  public init(context: LlamaContext, tokenizer: Tokenizer, cacheCapacity: Int? = nil) {
    self.context = context
    self.tokenizer = tokenizer
    batch = Batch(capacity: context.maxBatch)
    cache = context.makeCache(capacity: cacheCapacity)
  }

  /// Feeds `tokens` at positions cache.count..., asking logits for the last one only
  /// (or for every row when `allLogits`). Returns the logits pointer of the last row.
  @discardableResult
  public func prefill(_ tokens: [Int32], allLogits: Bool = false, adapters: AdapterMix? = nil)
    -> UnsafeMutablePointer<Float>
  {
    precondition(!tokens.isEmpty)
    var i = 0
    var last = context.logits
    while i < tokens.count {
      batch.clear()
      let end = min(tokens.count, i + context.maxBatch)
      for j in i..<end {
        batch.add(
          tokens[j], position: cache.count + (j - i), cache: cache, logits: allLogits || j == tokens.count - 1,
          adapters: adapters)
      }
      context.forward(batch)
      if end == tokens.count {
        last = context.logits(row: allLogits ? end - i - 1 : 0)
      }
      i = end
    }
    return last
  }

  /// Generates from `prompt` tokens. `onText` receives text as it becomes final; returning
  /// false cancels. Throws `ModelError.contextOverflow` when the prompt does not fit.
  public func generate(
    prompt: [Int32], maxTokens: Int, sampling: SamplingOptions, stop: [String] = [], adapters: AdapterMix? = nil,
    onText: (String) -> Bool = { _ in true }
  ) throws -> GenerationResult {
    try sampling.validate()
    guard !prompt.isEmpty else { throw ModelError.invalidArgument("the prompt is empty") }
    if prompt.count + 1 > cache.capacity {
      throw ModelError.contextOverflow(tokens: prompt.count + 1, limit: cache.capacity)
    }
    cache.truncate(to: 0)
    let sampler = Sampler(vocabSize: context.config.vocabSize, options: sampling)
    for t in prompt { sampler.accept(t) }
    let t0 = DispatchTime.now().uptimeNanoseconds
    var logits = prefill(prompt, adapters: adapters)
    let t1 = DispatchTime.now().uptimeNanoseconds
    var decoder = StreamingDecoder(tokenizer: tokenizer)
    var stopper = StopMatcher(stop)
    var text = ""
    var out: [Int32] = []
    out.reserveCapacity(maxTokens)
    var finish = FinishReason.length
    let limit = min(maxTokens, cache.capacity - prompt.count)
    gen: while out.count < limit {
      let tok = sampler.sample(logits)
      if tokenizer.isEndOfGeneration(tok) {
        finish = .stop
        break
      }
      out.append(tok)
      sampler.accept(tok)
      let piece = decoder.push(tok)
      if !piece.isEmpty {
        let (emit, stopped) = stopper.push(piece)
        text += emit
        if !emit.isEmpty && !onText(emit) {
          finish = .cancelled
          break gen
        }
        if stopped {
          finish = .stop
          break gen
        }
      }
      if out.count == limit { break }
      batch.clear()
      batch.add(tok, position: cache.count, cache: cache, logits: true, adapters: adapters)
      context.forward(batch)
      logits = context.logits(row: 0)
    }
    if finish != .cancelled {
      let tail = stopper.push(decoder.flush())
      var rest = tail.emit
      if !tail.stopped { rest += stopper.flush() } else { finish = .stop }
      if !rest.isEmpty {
        text += rest
        _ = onText(rest)
      }
    }
    let t2 = DispatchTime.now().uptimeNanoseconds
    return GenerationResult(
      text: text, tokens: out, finish: finish, promptTokens: prompt.count,
      prefillSeconds: Double(t1 - t0) / 1e9, decodeSeconds: Double(t2 - t1) / 1e9)
  }
}
