import Foundation
import Model
import Tensor
import TestSupport
import Testing

@testable import Adapters

/// LoRAWeights (the registry's form) and LoRAParameters (the trainer's) hold the same adapter:
/// a round trip is exact, and the training forward with the converted factors gives the serving
/// forward's log-probabilities with the adapter resident in F32.
@Suite struct TrainingBridgeTests {
  @Test func roundTripIsExact() throws {
    let path = TinyModel.temporaryPath("bridge.gguf")
    try TinyModel.write(to: path, seed: 3)
    let m = try LlamaModel(path: path)
    let w = randomLoRA("a", m.config, rank: 3, alpha: 6, seed: 4)
    let p = try LoRAParameters(w, config: m.config)
    #expect(p.layout.count == w.pairs.values.reduce(0) { $0 + $1.a.count + $1.b.count })
    let back = LoRAWeights(name: "a", parameters: p)
    for (t, pair) in w.pairs {
      let q = back.pairs[t]!
      #expect(q.a == pair.a && q.b == pair.b && q.scale == pair.scale && q.rank == pair.rank)
    }
    // A pair that does not fit the model is refused.
    var bad = w.pairs
    bad[LoRATarget(layer: 0, module: .q)] = LoRAPair(
      rank: 1, rows: 8, cols: 8, scale: 1, a: [Float](repeating: 0, count: 8), b: [Float](repeating: 0, count: 8))
    #expect(throws: TrainingError.self) { try LoRAParameters(LoRAWeights(name: "bad", pairs: bad), config: m.config) }
  }

  @Test func trainingForwardMatchesServingWithTheResidentAdapter() throws {
    let path = TinyModel.temporaryPath("bridge.gguf")
    try TinyModel.write(to: path, seed: 3)
    let m = try LlamaModel(path: path)
    let w = randomLoRA("a", m.config, rank: 4, alpha: 8, seed: 6)
    let toks: [Int32] = [3, 17, 99, 140, 8, 255, 31, 64, 12, 7, 200, 1, 5]
    let ctx = LoRATrainingContext(model: m, rank: 4, maxTokens: 32, threads: 2)
    let got = try ctx.tokenLogProbs(tokens: toks, promptLength: 4, adapter: try LoRAParameters(w, config: m.config))
    let serving = LlamaContext(model: m, threads: 2, maxBatch: 16, maxContext: 16, batched: .blas)
    let cache = serving.makeCache()
    let b = Batch()
    let mix = AdapterMix(ResidentAdapter(w, layers: m.config.layers, type: .f32))
    for i in 0..<(toks.count - 1) { b.add(toks[i], position: i, cache: cache, logits: true, adapters: mix) }
    serving.forward(b)
    let V = m.config.vocabSize
    for (j, i) in (3..<(toks.count - 1)).enumerated() {
      let row = serving.logits(row: i)
      let mx = (0..<V).map { row[$0] }.max()!
      let lse = Double(mx) + log((0..<V).reduce(0.0) { $0 + exp(Double(row[$1] - mx)) })
      let want = Double(row[Int(toks[i + 1])]) - lse
      #expect(abs(Double(got[j]) - want) < 2e-4, "token \(i + 1): \(got[j]) vs \(want)")
    }
  }
}
