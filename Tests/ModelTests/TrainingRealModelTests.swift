import Foundation
import Tensor
import Testing

@testable import Model

/// The training pass on the real model (skipped when `models/` lacks it): its log-probabilities
/// against the serving forward's float path, and one example's gradient against finite differences.
@Suite(.serialized, .enabled(if: FileManager.default.fileExists(atPath: RealTokenizerFixture.modelPath)))
struct TrainingRealModelTests {
  static let prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
  static let completion = "The capital of France is Paris, a city on the Seine.<|im_end|>"

  static func example(_ lm: LoadedModel) -> (tokens: [Int32], promptLength: Int) {
    let p = lm.tokenizer.encode(prompt, addSpecial: false, parseSpecial: true)
    let c = lm.tokenizer.encode(completion, addSpecial: false, parseSpecial: true)
    return (p + c, p.count)
  }

  @Test func logProbsMatchTheServingForward() throws {
    let lm = try RealModel.load()
    let m = lm.model
    let (toks, pl) = Self.example(lm)
    let layout = try LoRALayout(config: m.config, rank: 8, alpha: 16)
    let p = LoRAParameters(layout: layout, seed: 7, bScale: 0.02)
    let ctx = LoRATrainingContext(model: m, rank: 8, maxTokens: 64, threads: 2)
    var worst: Double = 0, moved: Double = 0
    for adapter in [nil, p] {
      let got = try ctx.tokenLogProbs(tokens: toks, promptLength: pl, adapter: adapter)
      let want = TrainingCheck.servingLogProbs(m, toks, promptLength: pl, adapter: adapter)
      #expect(got.count == want.count && got.count == toks.count - pl)
      worst = max(worst, zip(got, want).map { abs(Double($0) - $1) }.max()!)
      if adapter != nil {
        let base = TrainingCheck.servingLogProbs(m, toks, promptLength: pl)
        moved = zip(base, want).map { abs($0 - $1) }.max()!
      }
    }
    // Both float32 over the same dequantized weights through 30 blocks; only summation order differs.
    #expect(worst < 2e-3, "max |Δ log p| training vs serving: \(worst)")
    #expect(moved > 0.05, "the adapter moved log p by only \(moved)")
    print("real model: training vs serving log p, max diff \(worst); the adapter moves log p by up to \(moved)")
  }

  @Test func gradientMatchesFiniteDifferences() throws {
    let lm = try RealModel.load()
    let m = lm.model
    let (toks, pl) = Self.example(lm)
    let layout = try LoRALayout(config: m.config, rank: 8, alpha: 16)
    let p = LoRAParameters(layout: layout, seed: 7, bScale: 0.02)
    let ctx = LoRATrainingContext(model: m, rank: 8, maxTokens: 64, threads: 2)
    var g = LoRAGradients(layout: layout)
    try ctx.accumulateGradient(tokens: toks, promptLength: pl, adapter: p, into: &g)
    // The largest-gradient entry of A and of B in a few modules spread over the depth.
    let picks: [(Int, LoRAModule)] = [(0, .q), (7, .k), (15, .v), (22, .gate), (29, .down), (29, .o)]
    var report: [String] = []
    for (l, mod) in picks {
      let s = layout.slot(layer: l, module: mod)!
      for (base, count, name) in [(s.a, s.rank * s.cols, "A"), (s.b, s.rows * s.rank, "B")] {
        let i = (base..<(base + count)).max { abs(g.values[$0]) < abs(g.values[$1]) }!
        // A step that moves log π by ~0.02: far above float32 noise (~1e-4 here), small enough
        // that the curvature term stays well under a percent (measured: ≤ 0.1 %).
        let h = Float(0.02 / Double(abs(g.values[i])))
        var plus = p, minus = p
        plus.values[i] += h
        minus.values[i] -= h
        let fd =
          (try ctx.logProb(tokens: toks, promptLength: pl, adapter: plus)
            - ctx.logProb(tokens: toks, promptLength: pl, adapter: minus)) / Double(2 * h)
        let rel = abs(Double(g.values[i]) - fd) / abs(fd)
        report.append("layer \(l) \(mod.rawValue) \(name)[\(i - base)]: \(g.values[i]) vs \(fd)")
        #expect(rel < 0.01, "\(report.last!): relative error \(rel)")
      }
    }
    print("real model gradient vs finite differences:\n  " + report.joined(separator: "\n  "))
  }
}
