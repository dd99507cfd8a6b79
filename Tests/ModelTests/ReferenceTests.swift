import Foundation
import Testing

@testable import Model
import Tensor

/// llama.cpp's greedy completions and logits for the real model (`Fixtures/greedy.json`, made
/// by `Fixtures/make_reference.py`).
struct GreedyFixture: Decodable {
  struct Case: Decodable {
    var prompt: String
    var promptIDs: [Int32]
    var ids: [Int32]
    var topLogits: [[Double]]?
    enum CodingKeys: String, CodingKey {
      case prompt, ids
      case promptIDs = "prompt_ids"
      case topLogits = "top_logits"
    }
  }
  var cases: [Case]

  static func load() throws -> GreedyFixture {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/greedy.json")
    return try JSONDecoder().decode(GreedyFixture.self, from: Data(contentsOf: url))
  }
}

/// The real model, loaded once for the reference tests.
enum RealModel {
  static func load() throws -> LoadedModel {
    let path = RealTokenizerFixture.modelPath
    guard FileManager.default.fileExists(atPath: path) else { throw MissingReference(path: path) }
    return try LoadedModel(path: path)
  }
}

@Suite(.serialized) struct ReferenceTests {
  @Test func greedyCompletionsAgreeWithLlamaCpp() throws {
    let m = try RealModel.load()
    let fixture = try GreedyFixture.load()
    let ctx = LlamaContext(model: m.model, threads: 2, maxBatch: 64, maxContext: 128)
    let gen = Generator(context: ctx, tokenizer: m.tokenizer)
    var agree = 0
    var report: [String] = []
    for c in fixture.cases {
      #expect(m.tokenizer.encode(c.prompt, addSpecial: false) == c.promptIDs, "prompt ids of \(c.prompt.debugDescription)")
      let want = Array(c.ids.prefix(16))
      let r = try gen.generate(prompt: c.promptIDs, maxTokens: 16, sampling: .greedy)
      // Our generator stops before an end-of-generation token; llama.cpp's ids include it.
      let got = r.tokens + (r.finish == .stop && r.tokens.count < want.count ? [want[r.tokens.count]] : [])
      let same = Array(got.prefix(want.count)) == want
      if same { agree += 1 } else { report.append("\(c.prompt.debugDescription): \(got) vs \(want)") }
    }
    // "Most": both sides quantize activations to 8 bits, each with its own rounding (each lies
    // ~0.3 logits from exact math, see numpy tests below), so a near-tie may flip.
    #expect(agree * 2 > fixture.cases.count, "\(agree)/\(fixture.cases.count) agree; differing: \(report)")
    print("greedy agreement with llama.cpp: \(agree)/\(fixture.cases.count) prompts, first 16 tokens")
  }

  @Test func logitsMatchLlamaCpp() throws {
    let m = try RealModel.load()
    let fixture = try GreedyFixture.load()
    let ctx = LlamaContext(model: m.model, threads: 2, maxBatch: 64, maxContext: 128)
    var checked = 0
    for c in fixture.cases {
      guard let top = c.topLogits else { continue }
      let gen = Generator(context: ctx, tokenizer: m.tokenizer)
      let l = gen.prefill(c.promptIDs)
      #expect(Sampler.argmax(l, m.model.config.vocabSize) == Int32(top[0][0]))
      var worst = 0.0
      for pair in top {
        worst = max(worst, abs(Double(l[Int(pair[0])]) - pair[1]))
      }
      // Both quantize activations to 8 bits; each is ~0.3 from exact math (numpy test below).
      #expect(worst < 0.5, "\(c.prompt.debugDescription): max logit difference \(worst)")
      checked += 1
    }
    #expect(checked >= 3)
  }
}

/// Exact float64 logits from numpy on gguf-py-dequantized weights (`Fixtures/numpy_logits.json`,
/// made by `Fixtures/make_numpy_reference.py`): independent of llama.cpp and of lorad.
struct NumpyFixture: Decodable {
  struct Case: Decodable {
    var promptIDs: [Int32]
    var topLogits: [[Double]]
    enum CodingKeys: String, CodingKey {
      case promptIDs = "prompt_ids"
      case topLogits = "top_logits"
    }
  }
  var cases: [Case]
  static func load() throws -> NumpyFixture {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/numpy_logits.json")
    return try JSONDecoder().decode(NumpyFixture.self, from: Data(contentsOf: url))
  }
}

extension ReferenceTests {
  /// The float path (BLAS for every product: logits are asked for every row, so the head too is
  /// a batched product) lands on exact math; the int8 path within the noise of 8-bit activations.
  @Test(arguments: [BatchedProduct.blas, .int8])
  func logitsMatchExactMath(_ mode: BatchedProduct) throws {
    let m = try RealModel.load()
    let ctx = LlamaContext(model: m.model, threads: 2, maxBatch: 64, maxContext: 64, batched: mode)
    for c in try NumpyFixture.load().cases {
      let l = Generator(context: ctx, tokenizer: m.tokenizer).prefill(c.promptIDs, allLogits: true)
      #expect(Sampler.argmax(l, m.model.config.vocabSize) == Int32(c.topLogits[0][0]))
      let worst = c.topLogits.map { abs(Double(l[Int($0[0])]) - $0[1]) }.max()!
      #expect(worst < (mode == .blas ? 1e-3 : 0.5), "\(mode): max difference from numpy \(worst)")
      print("\(mode): max |logit - exact| = \(worst) over the top 20")
    }
  }
}
