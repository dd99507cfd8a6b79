import Foundation
import Tensor
import TestSupport
import Testing

@testable import Model

/// The LoRA backward against central finite differences of the training forward itself, on the
/// tiny model (Llama: tied head; Qwen2: NeoX RoPE, biases, separate head), with B non-zero so
/// both factors of every module get a gradient.
@Suite struct TrainingGradientTests {
  /// Σ_s weight_s · log π(y_s|x_s).
  static func objective(_ ctx: LoRATrainingContext, _ seqs: [TrainingSequence], _ p: LoRAParameters) throws -> Double {
    try zip(seqs, ctx.logProbs(seqs, adapter: p)).reduce(0) { $0 + Double($1.0.weight) * $1.1.total }
  }

  static func sequences(vocab: Int) -> [TrainingSequence] {
    [
      TrainingSequence(tokens: TrainingCheck.tokens(14, vocab: vocab, seed: 21), promptLength: 5, weight: 1),
      TrainingSequence(tokens: TrainingCheck.tokens(11, vocab: vocab, seed: 22), promptLength: 3, weight: -0.6),
    ]
  }

  @Test(arguments: [false, true])
  func gradientsMatchFiniteDifferences(_ qwen: Bool) throws {
    let m = try TrainingCheck.tinyModel(qwen ? TrainingForwardTests.qwen2() : .init())
    let layout = try LoRALayout(config: m.config, rank: 4, alpha: 8)
    let p = LoRAParameters(layout: layout, seed: 11, bScale: 0.1)
    let ctx = LoRATrainingContext(model: m, rank: 4, maxTokens: 64, threads: 2)
    let seqs = Self.sequences(vocab: m.config.vocabSize)
    var g = LoRAGradients(layout: layout)
    let lp = try ctx.accumulateGradient(seqs, adapter: p, into: &g)
    let f0 = try Self.objective(ctx, seqs, p)
    #expect(abs(zip(seqs, lp).reduce(0) { $0 + Double($1.0.weight) * $1.1.total } - f0) < 1e-6)

    // Three entries of A and three of B of every module of every layer.
    var rng = Xoshiro256(seed: 5)
    let h: Float = 1e-2
    var worst: Double = 0, checked = 0
    var report: [String] = []
    for s in layout.slots {
      for (base, count, name) in [(s.a, s.rank * s.cols, "A"), (s.b, s.rows * s.rank, "B")] {
        for _ in 0..<3 {
          let i = base + Int(rng.next() % UInt64(count))
          var plus = p, minus = p
          plus.values[i] += h
          minus.values[i] -= h
          let fd = (try Self.objective(ctx, seqs, plus) - Self.objective(ctx, seqs, minus)) / Double(2 * h)
          let err = abs(Double(g.values[i]) - fd)
          worst = max(worst, err)
          checked += 1
          if err > 2e-3 + 0.02 * abs(fd) {
            report.append("layer \(s.layer) \(s.module.rawValue) \(name)[\(i - base)]: \(g.values[i]) vs fd \(fd)")
          }
        }
      }
    }
    #expect(report.isEmpty, "\(report.count)/\(checked) entries off: \(report)")
    print("FD check (\(qwen ? "qwen2" : "llama")): \(checked) entries, worst |g − fd| \(worst)")
  }
}
