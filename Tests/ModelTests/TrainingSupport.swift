import Foundation
import Tensor
import TestSupport

@testable import Model

/// A LoRAParameters in the serving forward's form (F32, Bᵀ), to compare the training forward
/// with `LlamaContext` under the same adapter.
final class ParametersSource: LowRankSource, @unchecked Sendable {  // immutable after init
  let name = "parameters"
  private let storage: [Float]
  private let table: [LowRankFactor?]
  private let base: UnsafeMutablePointer<Float>

  init(_ p: LoRAParameters) {
    var s: [Float] = []
    var offsets: [(LoRALayout.Slot, Int, Int)] = []
    for slot in p.layout.slots {
      let a = s.count
      s += p.values[slot.a..<(slot.a + slot.rank * slot.cols)]
      let bt = s.count
      for k in 0..<slot.rank { for r in 0..<slot.rows { s.append(p.values[slot.b + r * slot.rank + k]) } }
      offsets.append((slot, a, bt))
    }
    storage = s
    base = .allocate(capacity: max(1, s.count))
    base.initialize(from: s, count: s.count)
    var t = [LowRankFactor?](repeating: nil, count: p.layout.layers * LoRAModule.allCases.count)
    for (slot, a, bt) in offsets {
      t[slot.layer * LoRAModule.allCases.count + slot.module.index] = LowRankFactor(
        rank: slot.rank, rows: slot.rows, cols: slot.cols, scale: slot.scale, type: .f32,
        a: UnsafeRawPointer(base + a), bt: UnsafeRawPointer(base + bt))
    }
    table = t
  }

  deinit { base.deallocate() }

  func factor(layer: Int, module: LoRAModule) -> LowRankFactor? {
    table[layer * LoRAModule.allCases.count + module.index]
  }
}

enum TrainingCheck {
  static func tinyModel(_ shape: TinyModel.Shape = .init(), seed: UInt64 = 5) throws -> LlamaModel {
    let path = TinyModel.temporaryPath("train.gguf")
    try TinyModel.write(to: path, shape: shape, seed: seed)
    return try LlamaModel(path: path)
  }

  /// Log-probabilities of the completion tokens from the serving forward (float BLAS path, one
  /// batch over the whole sequence), in double.
  static func servingLogProbs(
    _ m: LlamaModel, _ tokens: [Int32], promptLength: Int, adapter: LoRAParameters? = nil
  ) -> [Double] {
    let ctx = LlamaContext(
      model: m, threads: 2, maxBatch: tokens.count, maxContext: tokens.count, batched: .blas)
    let cache = ctx.makeCache()
    let b = Batch()
    let mix = adapter.map { AdapterMix(ParametersSource($0)) }
    for i in 0..<(tokens.count - 1) { b.add(tokens[i], position: i, cache: cache, logits: true, adapters: mix) }
    ctx.forward(b)
    let V = m.config.vocabSize
    return ((promptLength - 1)..<(tokens.count - 1)).map { i in
      let row = ctx.logits(row: i)
      var mx = -Float.infinity
      for j in 0..<V { mx = max(mx, row[j]) }
      var s: Double = 0
      for j in 0..<V { s += exp(Double(row[j] - mx)) }
      return Double(row[Int(tokens[i + 1])] - mx) - log(s)
    }
  }

  static func tokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int32] {
    var rng = Xoshiro256(seed: seed)
    return (0..<n).map { _ in Int32(rng.next() % UInt64(vocab)) }
  }
}
