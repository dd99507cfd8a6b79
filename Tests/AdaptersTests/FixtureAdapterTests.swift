import Foundation
import Model
import TestSupport
import Testing

@testable import Adapters

/// What `Fixtures/make_adapter_fixtures.py` recorded about each adapter it wrote.
struct AdapterFixtureFacts: Decodable {
  struct Adapter: Decodable {
    var peft: String
    var gguf: String
    var layers: [Int]
    var modules: [String]
    var rank: Int
    var scale: Float
    var tensors: Int
  }
  var adapters: [String: Adapter]

  static func load() throws -> AdapterFixtureFacts {
    try JSONDecoder().decode(
      AdapterFixtureFacts.self,
      from: Data(contentsOf: FormatFixture.fixtures.appendingPathComponent("adapter_perplexity.json")))
  }
}

@Suite struct FixtureAdapterTests {
  static let names = ["rank8_all", "rank4_qv"]

  @Test(arguments: names) func bothFormatsHoldTheSameNumbers(_ name: String) throws {
    let facts = try #require(try AdapterFixtureFacts.load().adapters[name])
    let peft = try LoRALoader.load(path: FormatFixture.fixture(facts.peft), config: FormatFixture.smol)
    let gguf = try LoRALoader.load(path: FormatFixture.fixture(facts.gguf), config: FormatFixture.smol)
    #expect(peft.name == name && gguf.name == name)
    let want = Set(
      facts.layers.flatMap { l in facts.modules.map { LoRATarget(layer: l, module: LoRAModule(rawValue: $0)!) } })
    #expect(Set(peft.pairs.keys) == want)
    #expect(peft.pairs.count * 2 == facts.tensors)
    #expect(peft.pairs.values.allSatisfy { $0.rank == facts.rank && $0.scale == facts.scale })
    #expect(sameNumbers(peft, gguf))
    // The numbers are not all zero, and A differs from B's layout (no accidental transposition).
    let p = peft.pairs[LoRATarget(layer: facts.layers[0], module: .q)]!
    #expect(p.rows == 576 && p.cols == 576 && p.a.contains { $0 != 0 } && p.b.contains { $0 != 0 })
  }

  /// The rank-4 fixture's scale comes from rank_pattern, alpha_pattern and rsLoRA together:
  /// r 16 / alpha 32 would give 2 (or 8 with rsLoRA); the patterns give 8 / √4 = 4.
  @Test func patternsAndRSLoRAGiveTheFixtureScale() throws {
    let json = try JSONParser.parse(
      Array(Data(contentsOf: URL(fileURLWithPath: FormatFixture.fixture("rank4_qv/adapter_config.json")))))
    let c = try PEFTConfig(json: json, path: "rank4_qv")
    #expect(c.r == 16 && c.loraAlpha == 32 && c.useRSLoRA)
    #expect(c.rank("model.layers.3.self_attn.q_proj") == 4)
    #expect(c.alpha("model.layers.3.self_attn.v_proj") == 8)
    #expect(c.scale("model.layers.3.self_attn.q_proj") == 4)
    #expect(c.targets("model.layers.27.self_attn.v_proj", layer: 27))
    #expect(!c.targets("model.layers.28.self_attn.v_proj", layer: 28))
    #expect(!c.targets("model.layers.3.self_attn.k_proj", layer: 3))
  }

  /// The fixtures' hand-made SmolLM2 config is the real model's (when the model is present).
  @Test func smolConfigMatchesTheRealModel() throws {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "../../models/SmolLM2-135M-Instruct.Q4_1.gguf"
    ).standardized.path
    guard FileManager.default.fileExists(atPath: path) else { return }
    let real = try LlamaConfig(gguf: GGUFFile(path: path))
    for m in LoRAModule.allCases { #expect(m.shape(real) == m.shape(FormatFixture.smol)) }
    #expect(real.layers == FormatFixture.smol.layers)
    _ = try LoRALoader.load(path: FormatFixture.fixture("rank8_all"), config: real)
  }

  @Test func loaderAcceptsEveryLayout() throws {
    let c = FormatFixture.smol
    let base = try LoRALoader.load(path: FormatFixture.fixture("rank4_qv.gguf"), config: c)
    // A directory holding adapter.gguf takes the directory's name.
    let dir = FormatFixture.directory("support")
    try FileManager.default.copyItem(atPath: FormatFixture.fixture("rank4_qv.gguf"), toPath: dir + "/adapter.gguf")
    let fromDir = try LoRALoader.load(path: dir, config: c)
    #expect(fromDir.name == (dir as NSString).lastPathComponent && sameNumbers(fromDir, base))
    #expect(try LoRALoader.load(path: dir + "/adapter.gguf", config: c).name == fromDir.name)
    // A path to either file of a PEFT directory means the directory.
    let viaConfig = try LoRALoader.load(path: FormatFixture.fixture("rank4_qv/adapter_config.json"), config: c)
    #expect(viaConfig.name == "rank4_qv" && sameNumbers(viaConfig, base))
    // A GGUF file under another name, without the extension.
    let odd = TinyModel.temporaryPath("lora-file")
    try FileManager.default.copyItem(atPath: FormatFixture.fixture("rank4_qv.gguf"), toPath: odd)
    #expect(try sameNumbers(LoRALoader.load(path: odd, config: c, name: "n"), base))
    #expect(try LoRALoader.load(path: odd, config: c, name: "legal").name == "legal")
  }

  @Test func fixturesRefuseAModelOfAnotherShape() {
    let shallow = FormatFixture.config(layers: 10, dim: 576, heads: 9, kvHeads: 3, ffn: 1536)
    let e = formatError { _ = try LoRALoader.load(path: FormatFixture.fixture("rank8_all"), config: shallow) }
    guard case .layerOutOfRange(_, let t, 18, 10)? = e else {
      Issue.record("got \(String(describing: e))")
      return
    }
    #expect(t.contains("layers.18."))
    let g = formatError {
      _ = try LoRALoader.load(
        path: FormatFixture.fixture("rank4_qv.gguf"),
        config: FormatFixture.config(layers: 30, dim: 64, heads: 4, kvHeads: 2, ffn: 128))
    }
    guard case .shapeMismatch(_, "blk.0.attn_q.weight.lora_a", [576, 4], [64, 4])? = g else {
      Issue.record("got \(String(describing: g))")
      return
    }
  }
}
