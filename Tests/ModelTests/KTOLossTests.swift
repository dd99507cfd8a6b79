import Foundation
import TestSupport
import Testing

@testable import Model

/// The KTO loss against TRL's formula in float64 numpy with finite-difference gradients
/// (`Fixtures/make_kto_reference.py`), and a few learning steps on the tiny model.
@Suite struct KTOLossTests {
  struct Fixture: Decodable {
    struct Batch: Decodable {
      var policy: [Double]
      var reference: [Double]
      var desirable: [Bool]
      var kl_policy: [Double]
      var kl_reference: [Double]
      var z: Double
      var desirable_weight: Double
      var undesirable_weight: Double
      var loss: Double
      var weights: [Double]
      var rewards: [Double]
    }
    var beta: Double
    var batches: [Batch]
  }

  @Test func lossAndWeightsMatchNumpy() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("Fixtures/kto_reference.json")
    let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    for b in f.batches {
      let z = KTOLoss.referencePoint(policy: b.kl_policy, reference: b.kl_reference)
      #expect(abs(z - b.z) < 1e-9)
      let kto = KTOLoss.balanced(
        beta: f.beta, desirableCount: b.desirable.filter { $0 }.count,
        undesirableCount: b.desirable.filter { !$0 }.count)
      #expect(abs(kto.desirableWeight - b.desirable_weight) < 1e-12 && kto.undesirableWeight == b.undesirable_weight)
      let batch = (0..<b.policy.count).map {
        KTOExample(logProb: b.policy[$0], referenceLogProb: b.reference[$0], desirable: b.desirable[$0])
      }
      let (loss, weights, rewards) = kto.evaluate(batch, referencePoint: z)
      #expect(abs(loss - b.loss) < 1e-12)
      // Finite differences in float64 with h = 1e-6: ~1e-10 of error.
      let worst = zip(weights, b.weights).map { abs($0 - $1) }.max()!
      #expect(worst < 1e-8, "weights vs numpy finite differences: \(worst)")
      #expect(zip(rewards, b.rewards).allSatisfy { abs($0 - $1) < 1e-12 })
      // Liked completions are pushed up (dLoss/dlog π < 0), disliked ones down.
      #expect(zip(weights, b.desirable).allSatisfy { $1 ? $0 < 0 : $0 > 0 })
    }
    #expect(KTOLoss.mismatchedPairs(count: 3).map { [$0.prompt, $0.completion] } == [[0, 1], [1, 2], [2, 0]])
    #expect(KTOLoss.referencePoint(policy: [], reference: []) == 0)
  }

  /// Steps of KTO + AdamW on the tiny model: the liked completion becomes more likely, the
  /// disliked one less, and the loss falls.
  @Test func learningStepsMoveLogProbsTheRightWay() throws {
    let m = try TrainingCheck.tinyModel()
    let layout = try LoRALayout(config: m.config, rank: 4, alpha: 8)
    var p = LoRAParameters(layout: layout, seed: 1)  // B = 0: starts as the base, the reference
    let ctx = LoRATrainingContext(model: m, rank: 4, maxTokens: 64, threads: 2)
    let V = m.config.vocabSize
    let seqs = [
      TrainingSequence(tokens: TrainingCheck.tokens(16, vocab: V, seed: 31), promptLength: 6),
      TrainingSequence(tokens: TrainingCheck.tokens(14, vocab: V, seed: 32), promptLength: 5),
    ]
    let liked = [true, false]
    let ref = try ctx.logProbs(seqs, adapter: nil).map(\.total)
    var opt = AdamW(layout: layout, settings: .init(learningRate: 1e-3, weightDecay: 0))
    let kto = KTOLoss.balanced(desirableCount: 1, undesirableCount: 1)
    var losses: [Double] = []
    var now = ref
    for step in 0..<8 {
      var g = LoRAGradients(layout: layout)
      if step == 0 {
        // The two-call form (log π first, then weights, then forward + backward) ...
        let batch = (0..<2).map { KTOExample(logProb: now[$0], referenceLogProb: ref[$0], desirable: liked[$0]) }
        let (loss, weights, _) = kto.evaluate(batch, referencePoint: 0)
        losses.append(loss)
        var weighted = seqs
        for i in 0..<2 { weighted[i].weight = Float(weights[i]) }
        try ctx.accumulateGradient(weighted, adapter: p, into: &g)
        // ... equals the one-forward form that picks each weight from the forward's own log π.
        var g1 = LoRAGradients(layout: layout)
        try ctx.accumulateGradient(seqs, adapter: p, into: &g1) { i, lp in
          Float(
            kto.example(
              .init(logProb: lp.total, referenceLogProb: ref[i], desirable: liked[i]),
              referencePoint: 0, batchSize: 2
            ).weight)
        }
        #expect(g.values == g1.values)
      } else {
        var loss: Double = 0
        try ctx.accumulateGradient(seqs, adapter: p, into: &g) { i, lp in
          let t = kto.example(
            .init(logProb: lp.total, referenceLogProb: ref[i], desirable: liked[i]), referencePoint: 0, batchSize: 2)
          loss += t.loss
          return Float(t.weight)
        }
        losses.append(loss)
      }
      try opt.update(&p, gradients: &g)
      now = try ctx.logProbs(seqs, adapter: p).map(\.total)
    }
    print("KTO steps: log π \(ref) -> \(now), losses \(losses)")
    #expect(now[0] > ref[0] + 0.5 && now[1] < ref[1] - 0.5, "log π moved from \(ref) to \(now)")
    #expect(losses.last! < losses.first!, "losses \(losses)")
  }
}
