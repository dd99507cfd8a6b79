import Foundation
import Tensor
import TestSupport
import Testing

@testable import Model

/// The training forward against the serving forward (float path): same log-probabilities, with
/// and without an adapter, for Llama and Qwen2 (NeoX RoPE, biases, separate head) shapes.
@Suite struct TrainingForwardTests {
  static func qwen2() -> TinyModel.Shape {
    var s = TinyModel.Shape()
    s.arch = "qwen2"
    s.tiedOutput = false
    s.kvHeads = 1
    return s
  }

  @Test(arguments: [false, true], [false, true])
  func logProbsMatchTheServingForward(_ qwen: Bool, _ withAdapter: Bool) throws {
    let m = try TrainingCheck.tinyModel(qwen ? Self.qwen2() : .init())
    let layout = try LoRALayout(config: m.config, rank: 4, alpha: 8)
    let p = withAdapter ? LoRAParameters(layout: layout, seed: 3, bScale: 0.1) : nil
    let toks = TrainingCheck.tokens(23, vocab: m.config.vocabSize, seed: 9)
    let ctx = LoRATrainingContext(model: m, rank: 4, maxTokens: 64, threads: 2)
    let got = try ctx.tokenLogProbs(tokens: toks, promptLength: 7, adapter: p)
    let want = TrainingCheck.servingLogProbs(m, toks, promptLength: 7, adapter: p)
    #expect(got.count == want.count)
    let err = zip(got, want).map { abs(Double($0) - $1) }.max()!
    // Both are float32 over the same dequantized weights; only summation order differs.
    #expect(err < 2e-4, "max |Δ log p| = \(err)")
    if withAdapter {
      let base = TrainingCheck.servingLogProbs(m, toks, promptLength: 7)
      let moved = zip(base, want).map { abs($0 - $1) }.max()!
      #expect(moved > 1e-2, "the adapter should change the log-probabilities (moved \(moved))")
    }
  }

  /// x·(W + s·B·A)ᵀ computed unmerged equals the base forward of a model with s·B·A merged
  /// into its (F32) weights: the adapter is applied where and how PEFT defines it.
  @Test func unmergedAdapterEqualsMergedWeights() throws {
    var shape = TinyModel.Shape()
    shape.weightType = .f32
    let m = try TrainingCheck.tinyModel(shape, seed: 8)
    let layout = try LoRALayout(config: m.config, rank: 3, alpha: 6)
    let p = LoRAParameters(layout: layout, seed: 4, bScale: 0.2)
    let mergedPath = TinyModel.temporaryPath("merged.gguf")
    try TinyModel.write(to: mergedPath, shape: shape, seed: 8) { name, rows, cols, w in
      guard name.hasPrefix("blk."),
        let mod = LoRAModule.allCases.first(where: { name.hasSuffix(".\($0.ggufName).weight") }),
        let s = layout.slot(layer: Int(name.split(separator: ".")[1])!, module: mod)
      else { return w }
      var out = w
      for i in 0..<rows {
        for j in 0..<cols {
          var d: Float = 0
          for k in 0..<s.rank { d += p.values[s.b + i * s.rank + k] * p.values[s.a + k * cols + j] }
          out[i * cols + j] += s.scale * d
        }
      }
      return out
    }
    let merged = try LlamaModel(path: mergedPath)
    let toks = TrainingCheck.tokens(18, vocab: m.config.vocabSize, seed: 12)
    let a = try LoRATrainingContext(model: m, rank: 3, maxTokens: 32, threads: 2)
      .tokenLogProbs(tokens: toks, promptLength: 4, adapter: p)
    let b = try LoRATrainingContext(model: merged, rank: 3, maxTokens: 32, threads: 2)
      .tokenLogProbs(tokens: toks, promptLength: 4, adapter: nil)
    let base = try LoRATrainingContext(model: m, rank: 3, maxTokens: 32, threads: 2)
      .tokenLogProbs(tokens: toks, promptLength: 4, adapter: nil)
    let err = zip(a, b).map { abs($0 - $1) }.max()!
    #expect(err < 1e-4, "unmerged vs merged: \(err)")
    #expect(zip(a, base).map { abs($0 - $1) }.max()! > 1e-2)
  }

  @Test func zeroBAdapterEqualsTheBase() throws {
    let m = try TrainingCheck.tinyModel()
    let layout = try LoRALayout(config: m.config, rank: 4, alpha: 8)
    let fresh = LoRAParameters(layout: layout, seed: 1)  // A random, B = 0
    let ctx = LoRATrainingContext(model: m, rank: 4, maxTokens: 64, threads: 2)
    let toks = TrainingCheck.tokens(20, vocab: m.config.vocabSize, seed: 4)
    let a = try ctx.tokenLogProbs(tokens: toks, promptLength: 5, adapter: fresh)
    let b = try ctx.tokenLogProbs(tokens: toks, promptLength: 5, adapter: nil)
    #expect(a == b)
  }

  @Test func sequencesInOnePassEqualEachAlone() throws {
    let m = try TrainingCheck.tinyModel()
    let layout = try LoRALayout(config: m.config, rank: 4, alpha: 8)
    let p = LoRAParameters(layout: layout, seed: 2, bScale: 0.1)
    let ctx = LoRATrainingContext(model: m, rank: 4, maxTokens: 40, threads: 2)
    let seqs = (0..<4).map { i in
      TrainingSequence(tokens: TrainingCheck.tokens(8 + 3 * i, vocab: 300, seed: UInt64(i)), promptLength: 2 + i)
    }
    let together = try ctx.logProbs(seqs, adapter: p)  // 4 sequences, 38 rows: one pass
    for (s, t) in zip(seqs, together) {
      let alone = try ctx.logProb(tokens: s.tokens, promptLength: s.promptLength, adapter: p)
      #expect(abs(alone - t.total) < 1e-4)
      #expect(t.tokens.count == s.completionLength)
    }
    // More rows than one pass holds: split into passes, same answers.
    let many = try ctx.logProbs(seqs + seqs, adapter: p)
    #expect(zip(many, together + together).allSatisfy { abs($0.total - $1.total) < 1e-4 })
  }

  @Test func badInputsAreRefused() throws {
    let m = try TrainingCheck.tinyModel()
    let ctx = LoRATrainingContext(model: m, rank: 2, targets: [.q, .v], maxTokens: 16, threads: 1)
    #expect(throws: TrainingError.self) { try ctx.logProb(tokens: [1, 2, 3], promptLength: 0, adapter: nil) }
    #expect(throws: TrainingError.self) { try ctx.logProb(tokens: [1, 2, 3], promptLength: 3, adapter: nil) }
    #expect(throws: TrainingError.self) { try ctx.logProb(tokens: [1, 2, 999], promptLength: 1, adapter: nil) }
    #expect(throws: TrainingError.self) {
      try ctx.logProb(tokens: Array(repeating: 1, count: 40), promptLength: 1, adapter: nil)
    }
    let wide = LoRAParameters(layout: try LoRALayout(config: m.config, rank: 4, alpha: 4, modules: [.q]), seed: 1)
    #expect(throws: TrainingError.self) { try ctx.logProb(tokens: [1, 2, 3], promptLength: 1, adapter: wide) }
    let other = LoRAParameters(layout: try LoRALayout(config: m.config, rank: 2, alpha: 4, modules: [.up]), seed: 1)
    #expect(throws: TrainingError.self) { try ctx.logProb(tokens: [1, 2, 3], promptLength: 1, adapter: other) }
  }
}
