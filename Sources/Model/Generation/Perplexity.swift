import Foundation

/// Perplexity the way llama.cpp's `llama-perplexity` computes it, so the two are comparable:
/// the text's tokens are cut into non-overlapping chunks of `ctx` tokens (the remainder is
/// dropped); each chunk starts from an empty cache (its first token replaced by BOS when the
/// model adds BOS); tokens ctx/2+1 ..< ctx of each chunk are scored (ctx/2 - 1 per chunk, as
/// llama-perplexity does), each by the logits at the previous position; PPL = exp(mean NLL).
public struct Perplexity {
  public struct Progress: Sendable {
    public var chunk: Int
    public var chunks: Int
    public var ppl: Double
  }
  public struct Result: Sendable {
    public var ppl: Double
    public var chunks: Int
    public var scored: Int
    public var nll: Double
    /// Standard error of the PPL estimate (as llama.cpp reports it).
    public var pplError: Double
  }

  public static func run(
    context: LlamaContext, tokens: [Int32], ctx: Int, bos: Int32?, adapters: AdapterMix? = nil,
    progress: (Progress) -> Void = { _ in }
  ) throws -> Result {
    guard ctx >= 2, ctx % 2 == 0 else { throw ModelError.invalidArgument("--ctx must be even and at least 2") }
    guard ctx <= context.maxContext else {
      throw ModelError.invalidArgument("--ctx \(ctx) is larger than the context's \(context.maxContext)")
    }
    let chunks = tokens.count / ctx
    guard chunks > 0 else {
      throw ModelError.invalidArgument(
        "the text has \(tokens.count) tokens; perplexity at --ctx \(ctx) needs at least \(ctx)")
    }
    let vocab = context.config.vocabSize
    let cache = context.makeCache(capacity: ctx)
    let batch = Batch(capacity: context.maxBatch)
    let first = ctx / 2
    var nll = 0.0, nll2 = 0.0
    var count = 0
    for c in 0..<chunks {
      cache.truncate(to: 0)
      var chunk = Array(tokens[(c * ctx)..<((c + 1) * ctx)])
      if let bos { chunk[0] = bos }
      var start = 0
      while start < ctx {
        let end = min(ctx, start + context.maxBatch)
        batch.clear()
        for p in start..<end {
          batch.add(chunk[p], position: p, cache: cache, logits: p >= first && p < ctx - 1, adapters: adapters)
        }
        context.forward(batch)
        var row = 0
        for p in start..<end where p >= first && p < ctx - 1 {
          let l = context.logits(row: row)
          row += 1
          var mx = l[0]
          for i in 1..<vocab where l[i] > mx { mx = l[i] }
          var sum = 0.0
          for i in 0..<vocab { sum += Double(expf(l[i] - mx)) }
          let lp = Double(l[Int(chunk[p + 1])] - mx) - log(sum)
          nll -= lp
          nll2 += lp * lp
          count += 1
        }
        start = end
      }
      progress(Progress(chunk: c + 1, chunks: chunks, ppl: exp(nll / Double(count))))
    }
    let mean = nll / Double(count)
    let ppl = exp(mean)
    var err = 0.0
    if count > 1 {
      let v = (nll2 / Double(count) - mean * mean) / Double(count - 1)
      err = max(v, 0).squareRoot() * ppl
    }
    return Result(ppl: ppl, chunks: chunks, scored: count, nll: mean, pplError: err)
  }
}
