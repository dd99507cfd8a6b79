import Adapters
import Foundation
import Model

/// Perplexity of the base model and of adapter versions on a small general-text set, computed
/// in this process as `lorad perplexity` does (`Perplexity.run`: chunks of `ctx` tokens, the
/// second half of each scored). Versions are read from the adapters directory the daemon
/// writes; each version's figure is computed once.
final class DriftMeter {
  let loaded: LoadedModel
  let context: LlamaContext
  let registry: AdapterRegistry
  let tokens: [Int32]
  let ctx: Int
  /// The base model's perplexity.
  private(set) var base = 0.0
  private var cache: [Int: Double] = [:]

  /// - text: the calibration text; its first `chunks × ctx` tokens are used.
  init(loaded: LoadedModel, adaptersDirectory: String, text: String, ctx: Int, chunks: Int, threads: Int) throws {
    self.loaded = loaded
    self.ctx = ctx
    let all = loaded.tokenizer.encode(text, addSpecial: true, parseSpecial: false)
    guard all.count >= ctx else {
      throw SimulateError.input("the calibration text has \(all.count) tokens; --ppl-ctx \(ctx) needs at least that")
    }
    tokens = Array(all.prefix(ctx * chunks))
    context = LlamaContext(model: loaded.model, threads: threads, maxBatch: ctx, maxContext: ctx)
    registry = try AdapterRegistry(
      directory: adaptersDirectory, config: loaded.model.config, memoryBudget: 256 << 20)
    base = try perplexity(adapters: nil)
  }

  /// Tokens scored per measurement.
  var scored: Int { (tokens.count / ctx) * (ctx / 2 - 1) }

  /// Perplexity with `adapter@version` applied at scale 1.
  func perplexity(adapter: String, version: Int) throws -> Double {
    if let p = cache[version] { return p }
    let lease = try registry.acquire("\(adapter)@\(version)")
    defer { lease.release() }
    let p = try perplexity(adapters: AdapterMix([AdapterMix.Part(source: lease.adapter, scale: 1)]))
    cache[version] = p
    return p
  }

  private func perplexity(adapters: AdapterMix?) throws -> Double {
    let bos: Int32? = loaded.addsBOS ? loaded.tokenizer.bosID : nil
    return try Perplexity.run(context: context, tokens: tokens, ctx: ctx, bos: bos, adapters: adapters).ppl
  }
}
