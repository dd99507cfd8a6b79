import Foundation
import Model
import Tensor
import Testing

@testable import Adapters

/// llama-perplexity's figures with the fixture adapters (`Fixtures/adapter_perplexity.json`,
/// made by `Fixtures/make_adapter_fixtures.py` with llama.cpp's `--lora` / `--lora-scaled`).
struct AdapterPerplexityFixture: Decodable {
  struct Run: Decodable {
    var ppl: Double
    var runningPPL: [Double]
    enum CodingKeys: String, CodingKey {
      case ppl
      case runningPPL = "running_ppl"
    }
  }
  struct Adapter: Decodable {
    var peft: String
    var gguf: String
    var scale1: Run
    var scaleHalf: Run
    enum CodingKeys: String, CodingKey {
      case peft, gguf
      case scale1 = "scale_1"
      case scaleHalf = "scale_0.5"
    }
  }
  var textFile: String
  var nCtx: Int
  var adapters: [String: Adapter]
  enum CodingKeys: String, CodingKey {
    case adapters
    case textFile = "text_file"
    case nCtx = "n_ctx"
  }

  static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
  static let modelPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
  static func load() throws -> AdapterPerplexityFixture {
    try JSONDecoder().decode(
      AdapterPerplexityFixture.self, from: Data(contentsOf: directory.appendingPathComponent("adapter_perplexity.json"))
    )
  }
}

@Suite(.serialized) struct AdapterReferenceTests {
  /// Perplexity with each fixture adapter, from its PEFT directory and from its GGUF LoRA, at
  /// scale 1 and 0.5, after the first two chunks: within 1% of llama.cpp's, and the two formats
  /// within 0.1% of each other.
  @Test func perplexityWithAdaptersMatchesLlamaCpp() throws {
    guard FileManager.default.fileExists(atPath: AdapterPerplexityFixture.modelPath) else {
      Issue.record("\(AdapterPerplexityFixture.modelPath) is missing: run `make model` (make test does it)")
      return
    }
    let f = try AdapterPerplexityFixture.load()
    let m = try LoadedModel(path: AdapterPerplexityFixture.modelPath)
    let text = try String(
      contentsOf: AdapterPerplexityFixture.directory.appendingPathComponent(f.textFile), encoding: .utf8)
    let chunks = 2
    let tokens = Array(m.tokenizer.encode(text, addSpecial: true, parseSpecial: false).prefix(chunks * f.nCtx))
    let ctx = LlamaContext(model: m.model, threads: 2, maxBatch: f.nCtx, maxContext: f.nCtx)
    #expect(!f.adapters.isEmpty)
    for (name, a) in f.adapters.sorted(by: { $0.key < $1.key }) {
      let dir = AdapterPerplexityFixture.directory
      let peft = ResidentAdapter(
        try LoRALoader.load(path: dir.appendingPathComponent(a.peft).path, config: m.model.config),
        layers: m.model.config.layers)
      let gguf = ResidentAdapter(
        try LoRALoader.load(path: dir.appendingPathComponent(a.gguf).path, config: m.model.config),
        layers: m.model.config.layers)
      for (scale, run) in [(Float(1), a.scale1), (0.5, a.scaleHalf)] {
        let want = run.runningPPL[chunks - 1]
        let p = try Perplexity.run(
          context: ctx, tokens: tokens, ctx: f.nCtx, bos: nil, adapters: AdapterMix(peft, scale: scale)
        ).ppl
        let g = try Perplexity.run(
          context: ctx, tokens: tokens, ctx: f.nCtx, bos: nil, adapters: AdapterMix(gguf, scale: scale)
        ).ppl
        // Two chunks (1,024 tokens) through 8-bit activations: a last-bit difference in one
        // float kernel moves this PPL by up to ~0.5% (rank4_qv at 0.5: 18.565 with the AVX2
        // kernels, 18.470 with the AVX-512 ones; llama.cpp 18.660), so 1.5%. A wrong scale moves
        // it by 15% or more.
        #expect(abs(p / want - 1) < 0.015, "\(name) PEFT scale \(scale): lorad \(p), llama.cpp \(want)")
        #expect(abs(g / want - 1) < 0.015, "\(name) GGUF scale \(scale): lorad \(g), llama.cpp \(want)")
        #expect(abs(p / g - 1) < 0.001, "\(name) scale \(scale): PEFT \(p) vs GGUF \(g)")
        print("adapter \(name) scale \(scale): PPL PEFT \(p), GGUF \(g), llama.cpp \(want)")
      }
    }
  }
}
