import Foundation
import Tensor
import Testing

@testable import Model

/// The training pass against an independent float64 numpy computation
/// (`Fixtures/make_training_reference.py`: a tiny Llama and a rank-4 LoRA it writes itself,
/// log-probabilities, and the gradient by float64 finite differences).
struct TrainingReferenceFixture: Decodable {
  struct Sequence: Decodable {
    var tokens: [Int32]
    var promptLength: Int
    var weight: Float
    var tokenLogprobs: [Double]
    var baseTokenLogprobs: [Double]
    enum CodingKeys: String, CodingKey {
      case tokens, weight
      case promptLength = "prompt_length"
      case tokenLogprobs = "token_logprobs"
      case baseTokenLogprobs = "base_token_logprobs"
    }
  }
  struct Gradient: Decodable {
    var layer: Int
    var module: String
    var factor: String
    var index: Int
    var offset: Int
    var grad: Double
  }
  var rank: Int
  var alpha: Float
  var sequences: [Sequence]
  var gradients: [Gradient]
  var objective: Double

  static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

  static func load() throws -> (TrainingReferenceFixture, LlamaModel, LoRAParameters) {
    let f = try JSONDecoder().decode(
      TrainingReferenceFixture.self, from: Data(contentsOf: dir.appendingPathComponent("training_reference.json")))
    let m = try LlamaModel(path: dir.appendingPathComponent("tiny_train.gguf").path)
    let layout = try LoRALayout(config: m.config, rank: f.rank, alpha: f.alpha)
    let raw = try Data(contentsOf: dir.appendingPathComponent("tiny_train_lora.f32"))
    let values = raw.withUnsafeBytes { b in
      (0..<(raw.count / 4)).map { b.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
    }
    guard values.count == layout.count else {
      throw TrainingError.layoutMismatch("tiny_train_lora.f32 holds \(values.count) floats, the layout \(layout.count)")
    }
    return (f, m, LoRAParameters(layout: layout, values: values))
  }
}

@Suite struct TrainingReferenceTests {
  @Test func logProbsMatchNumpy() throws {
    let (f, m, p) = try TrainingReferenceFixture.load()
    #expect(m.weights.tiedOutput)
    let ctx = LoRATrainingContext(model: m, rank: f.rank, maxTokens: 32, threads: 2)
    let seqs = f.sequences.map { TrainingSequence(tokens: $0.tokens, promptLength: $0.promptLength, weight: $0.weight) }
    let got = try ctx.logProbs(seqs, adapter: p)
    let base = try ctx.logProbs(seqs, adapter: nil)
    var worst: Double = 0
    for (i, s) in f.sequences.enumerated() {
      for (a, b) in zip(got[i].tokens, s.tokenLogprobs) { worst = max(worst, abs(Double(a) - b)) }
      for (a, b) in zip(base[i].tokens, s.baseTokenLogprobs) { worst = max(worst, abs(Double(a) - b)) }
      #expect(got[i].tokens.count == s.tokenLogprobs.count)
    }
    // float32 through 2 blocks and a 320-way softmax of logits of a few units: ~1e-5.
    #expect(worst < 1e-4, "max |Δ log p| vs float64 numpy: \(worst)")
    // The adapter matters: it moves log-probabilities by far more than the tolerance.
    let moved = zip(f.sequences[0].tokenLogprobs, f.sequences[0].baseTokenLogprobs).map { abs($0 - $1) }.max()!
    #expect(moved > 0.1)
  }

  @Test func gradientMatchesNumpy() throws {
    let (f, m, p) = try TrainingReferenceFixture.load()
    let ctx = LoRATrainingContext(model: m, rank: f.rank, maxTokens: 32, threads: 2)
    let seqs = f.sequences.map { TrainingSequence(tokens: $0.tokens, promptLength: $0.promptLength, weight: $0.weight) }
    var g = LoRAGradients(layout: p.layout)
    let lp = try ctx.accumulateGradient(seqs, adapter: p, into: &g)
    let objective = zip(seqs, lp).reduce(0) { $0 + Double($1.0.weight) * $1.1.total }
    #expect(abs(objective - f.objective) < 1e-3)
    var worst: Double = 0
    var off: [String] = []
    for e in f.gradients {
      let slot = p.layout.slot(layer: e.layer, module: LoRAModule(rawValue: e.module)!)!
      #expect(e.offset == (e.factor == "A" ? slot.a : slot.b) + e.index, "fixture layout differs from LoRALayout")
      let err = abs(Double(g.values[e.offset]) - e.grad)
      worst = max(worst, err / max(1, abs(e.grad)))
      // float32 end to end lands ~1e-6 from float64 (measured 3.5e-6); 1e-4 leaves a wide margin.
      if err > 1e-4 * max(1, abs(e.grad)) {
        off.append("layer \(e.layer) \(e.module) \(e.factor)[\(e.index)]: \(g.values[e.offset]) vs \(e.grad)")
      }
    }
    #expect(off.isEmpty, "\(off.count)/\(f.gradients.count) gradient entries off: \(off)")
    print("gradient vs float64 numpy: \(f.gradients.count) entries, worst error \(worst) (relative above 1)")
  }
}
