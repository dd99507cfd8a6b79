import Foundation
import Model
import Tensor
import TestSupport
import Testing

@testable import Adapters

/// Random LoRA weights for a model config: every module of every layer, A and B both non-zero.
func randomLoRA(_ name: String, _ c: LlamaConfig, rank: Int, alpha: Float, seed: UInt64) -> LoRAWeights {
  var rng = Xoshiro256(seed: seed)
  func r(_ n: Int, _ s: Float) -> [Float] { (0..<n).map { _ in (rng.nextUnit() * 2 - 1) * s } }
  var pairs: [LoRATarget: LoRAPair] = [:]
  for l in 0..<c.layers {
    for m in LoRAModule.allCases {
      let (rows, cols) = m.shape(c)
      pairs[LoRATarget(layer: l, module: m)] = LoRAPair(
        rank: rank, rows: rows, cols: cols, scale: alpha / Float(rank),
        a: r(rank * cols, 1 / Float(cols).squareRoot()), b: r(rows * rank, 0.5))
    }
  }
  return LoRAWeights(name: name, pairs: pairs)
}

@Suite struct MixedBatchTests {
  static func logitsRow(_ ctx: LlamaContext, _ i: Int) -> [Float] {
    Array(UnsafeBufferPointer(start: ctx.logits(row: i), count: ctx.config.vocabSize))
  }

  /// The unmerged product W·x + s·B(A·x) equals the product with the merged weight W + s·B·A
  /// (an F32 model, float path, so only float rounding differs).
  @Test func unmergedEqualsMergedWeights() throws {
    var shape = TinyModel.Shape()
    shape.weightType = .f32
    shape.embeddingType = .f32
    let basePath = TinyModel.temporaryPath("base.gguf")
    try TinyModel.write(to: basePath, shape: shape, seed: 5)
    let base = try LlamaModel(path: basePath)
    let lora = randomLoRA("a", base.config, rank: 4, alpha: 8, seed: 9)
    let userScale: Float = 0.5
    // The reference: the same random base with s·B·A merged into every adapted matrix.
    let mergedPath = TinyModel.temporaryPath("merged.gguf")
    try TinyModel.write(to: mergedPath, shape: shape, seed: 5) { name, rows, cols, w in
      guard name.hasPrefix("blk."),
        let m = LoRAModule.allCases.first(where: { name.hasSuffix(".\($0.ggufName).weight") })
      else { return w }
      let layer = Int(name.split(separator: ".")[1])!
      let p = lora.pairs[LoRATarget(layer: layer, module: m)]!
      var out = w
      for i in 0..<rows {
        for j in 0..<cols {
          var d: Float = 0
          for k in 0..<p.rank { d += p.b[i * p.rank + k] * p.a[k * cols + j] }
          out[i * cols + j] += userScale * p.scale * d
        }
      }
      return out
    }
    let merged = try LlamaModel(path: mergedPath)
    let tokens: [Int32] = [3, 17, 99, 140, 8, 255, 31, 64, 12, 7]
    func run(_ m: LlamaModel, _ mix: AdapterMix?) -> [[Float]] {
      let ctx = LlamaContext(model: m, threads: 2, maxBatch: 16, maxContext: 32, batched: .blas)
      let cache = ctx.makeCache()
      let b = Batch()
      for (i, t) in tokens.enumerated() { b.add(t, position: i, cache: cache, logits: true, adapters: mix) }
      ctx.forward(b)
      return (0..<tokens.count).map { Self.logitsRow(ctx, $0) }
    }
    let adapter = ResidentAdapter(lora, layers: base.config.layers, type: .f32)
    let got = run(base, AdapterMix(adapter, scale: userScale))
    let want = run(merged, nil)
    let plain = run(base, nil)
    let diff = zip(got, want).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
    let moved = zip(plain, want).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
    #expect(moved > 0.05, "the adapter must change the logits (moved \(moved))")
    #expect(diff < 1e-3, "unmerged vs merged: \(diff)")
  }

  /// Four adapters, a two-adapter mix and the base, decoded together in one batch, give each
  /// sequence the same greedy tokens and logits as when it runs alone, with the factors served
  /// in Q8_0 (the default) and in F16.
  @Test(arguments: [GGMLType.q8_0, .f16]) func mixedBatchEqualsEachAlone(type: GGMLType) throws {
    let path = TinyModel.temporaryPath("mixed.gguf")
    try TinyModel.write(to: path, seed: 2)
    let m = try LlamaModel(path: path)
    let ads = (0..<4).map {
      ResidentAdapter(
        randomLoRA("a\($0)", m.config, rank: 4, alpha: 8, seed: 100 + UInt64($0)), layers: m.config.layers,
        type: type)
    }
    #expect(ads[0].factor(layer: 0, module: .k)?.type == type, "every factor of the tiny model is served as \(type)")
    let mixes: [AdapterMix?] = [
      nil, AdapterMix(ads[0]), AdapterMix(ads[1], scale: 0.5), AdapterMix(ads[2]), AdapterMix(ads[3], scale: 1.5),
      AdapterMix([.init(source: ads[0], scale: 0.5), .init(source: ads[1], scale: 1)]),
    ]
    let prompts: [[Int32]] = [[5, 6, 7], [40, 41], [100, 20, 30, 40], [9], [77, 78, 79], [5, 6, 7]]
    let steps = 10
    let ctx = LlamaContext(model: m, threads: 2, maxBatch: 16, maxContext: 32)

    func alone(_ s: Int) -> ([Int32], [[Float]]) {
      let cache = ctx.makeCache()
      let b = Batch()
      for (i, t) in prompts[s].enumerated() {
        b.add(t, position: i, cache: cache, logits: i == prompts[s].count - 1, adapters: mixes[s])
      }
      ctx.forward(b)
      var toks: [Int32] = [], logs: [[Float]] = []
      for _ in 0..<steps {
        logs.append(Self.logitsRow(ctx, 0))
        let t = Sampler.argmax(ctx.logits(row: 0), m.config.vocabSize)
        toks.append(t)
        b.clear()
        b.add(t, position: cache.count, cache: cache, logits: true, adapters: mixes[s])
        ctx.forward(b)
      }
      return (toks, logs)
    }
    let solo = (0..<mixes.count).map(alone)

    // Together: all prompts in one mixed prefill batch, then every decode step batched.
    let caches = (0..<mixes.count).map { _ in ctx.makeCache() }
    let b = Batch()
    for s in 0..<mixes.count {
      for (i, t) in prompts[s].enumerated() {
        b.add(t, position: i, cache: caches[s], logits: i == prompts[s].count - 1, adapters: mixes[s])
      }
    }
    ctx.forward(b)
    var toks = [[Int32]](repeating: [], count: mixes.count)
    var worst: Float = 0
    for step in 0..<steps {
      for s in 0..<mixes.count {
        let l = Self.logitsRow(ctx, s)
        worst = max(worst, zip(l, solo[s].1[step]).map { abs($0 - $1) }.max()!)
        toks[s].append(Sampler.argmax(ctx.logits(row: s), m.config.vocabSize))
      }
      b.clear()
      for s in 0..<mixes.count {
        b.add(toks[s].last!, position: caches[s].count, cache: caches[s], logits: true, adapters: mixes[s])
      }
      ctx.forward(b)
    }
    for s in 0..<mixes.count { #expect(toks[s] == solo[s].0, "sequence \(s) (\(mixes[s]?.description ?? "base"))") }
    #expect(worst < 1e-3, "batched vs alone logits differ by \(worst)")
    // And the adapters matter: the adapted sequences do not all decode like the base.
    #expect(Set((1..<5).map { solo[$0].0 }).count > 1 || solo[1].0 != solo[0].0)
  }
}
