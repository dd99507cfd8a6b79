import Foundation
import Model
import TestSupport
import Testing

@testable import Adapters

@Suite struct PEFTFormatTests {
  typealias F = FormatFixture

  func config(_ json: String) throws -> PEFTConfig {
    try PEFTConfig(json: JSONParser.parse(Array(json.utf8)), path: "adapter_config.json")
  }

  @Test func scaleIsAlphaOverRank() throws {
    let d = F.peftDirectory(config: F.basicConfig, tensors: F.pair(0, .q, rank: 2) + F.pair(1, .v, rank: 2))
    let w = try LoRALoader.load(path: d, config: F.tiny)
    #expect(w.pairs.count == 2 && w.pairs.values.allSatisfy { $0.scale == 2 && $0.rank == 2 })
    let p = w.pairs[LoRATarget(layer: 1, module: .v)]!
    #expect(p.rows == 32 && p.cols == 64 && p.a == F.Tensor("", [2, 64]).values)
  }

  @Test func rsLoRADividesByTheRootOfTheRank() throws {
    let c = try config(#"{"r": 16, "lora_alpha": 8, "use_rslora": true}"#)
    #expect(c.scale("model.layers.0.self_attn.q_proj") == 2)
    let plain = try config(#"{"r": 16, "lora_alpha": 8}"#)
    #expect(plain.scale("model.layers.0.self_attn.q_proj") == 0.5)
    let defaults = try config("{}")
    #expect(defaults.r == 8 && defaults.loraAlpha == 8 && defaults.scale("model.layers.0.mlp.up_proj") == 1)
  }

  /// Keys are tried in file order; the first whose `(.*\.)?(key)$` matches the whole module
  /// path wins, and a key matches only at a path component boundary.
  @Test func patternsMatchAsPEFTDoes() throws {
    let c = try config(
      #"""
      {"r": 8, "lora_alpha": 16, "use_rslora": false,
       "rank_pattern": {"layers\\.1\\.self_attn\\.q_proj": 2, "q_proj": 4, "proj": 32, "layers.0.mlp.*": 6},
       "alpha_pattern": {"model.layers.0.self_attn.v_proj": 3, "v_proj": 5}}
      """#)
    #expect(c.rank("model.layers.1.self_attn.q_proj") == 2)
    #expect(c.rank("model.layers.0.self_attn.q_proj") == 4)
    #expect(c.rank("model.layers.11.self_attn.q_proj") == 4)  // `layers\.1\.` needs the dot after 1
    #expect(c.rank("model.layers.0.self_attn.k_proj") == 8)  // "proj" is not a component
    #expect(c.rank("model.layers.0.mlp.down_proj") == 6)  // a regex key
    #expect(c.rank("model.layers.1.mlp.down_proj") == 8)
    #expect(c.alpha("model.layers.0.self_attn.v_proj") == 3)  // the whole path also matches
    #expect(c.alpha("model.layers.1.self_attn.v_proj") == 5)
    #expect(c.scale("model.layers.1.self_attn.v_proj") == 5.0 / 8)
    #expect(c.scale("model.layers.1.self_attn.q_proj") == 16.0 / 2)

    let reversed = try config(#"{"rank_pattern": {"q_proj": 4, "layers\\.1\\.self_attn\\.q_proj": 2}}"#)
    #expect(reversed.rank("model.layers.1.self_attn.q_proj") == 4)
  }

  @Test func patternsGiveEachModuleItsRankAndScale() throws {
    let cfg = #"""
      {"r": 4, "lora_alpha": 8, "use_rslora": true, "target_modules": ["q_proj", "v_proj", "down_proj"],
       "rank_pattern": {"v_proj": 2, "layers\\.1\\.mlp\\.down_proj": 8}, "alpha_pattern": {"down_proj": 16}}
      """#
    let d = F.peftDirectory(
      config: cfg,
      tensors: F.pair(0, .q, rank: 4) + F.pair(0, .v, rank: 2) + F.pair(0, .down, rank: 4) + F.pair(1, .down, rank: 8))
    let w = try LoRALoader.load(path: d, config: F.tiny)
    func s(_ l: Int, _ m: LoRAModule) -> Float? { w.pairs[LoRATarget(layer: l, module: m)]?.scale }
    #expect(s(0, .q) == 4)  // 8 / √4
    #expect(s(0, .v) == Float(8 / 2.0.squareRoot()))
    #expect(s(0, .down) == 8)  // 16 / √4
    #expect(s(1, .down) == Float(16 / 8.0.squareRoot()))
    #expect(w.maxRank == 8)
  }

  @Test func targetModulesAsListRegexAllLinearAndLayers() throws {
    let list = try config(#"{"target_modules": ["q_proj", "mlp.up_proj", "model.layers.1.self_attn.o_proj"]}"#)
    #expect(list.targets("model.layers.0.self_attn.q_proj", layer: 0))
    #expect(list.targets("model.layers.4.mlp.up_proj", layer: 4))
    #expect(list.targets("model.layers.1.self_attn.o_proj", layer: 1))
    #expect(!list.targets("model.layers.0.self_attn.o_proj", layer: 0))
    #expect(!list.targets("model.layers.0.self_attn.k_proj", layer: 0))
    let regex = try config(#"{"target_modules": ".*\\.(0|1)\\.self_attn\\.(q|k)_proj"}"#)
    #expect(regex.targets("model.layers.1.self_attn.k_proj", layer: 1))
    #expect(!regex.targets("model.layers.2.self_attn.k_proj", layer: 2))
    #expect(!regex.targets("model.layers.1.self_attn.v_proj", layer: 1))
    let all = try config(
      #"{"target_modules": "all-linear", "exclude_modules": ["down_proj"], "layers_to_transform": [0, 2]}"#)
    #expect(all.targets("model.layers.2.mlp.gate_proj", layer: 2))
    #expect(!all.targets("model.layers.2.mlp.down_proj", layer: 2))
    #expect(!all.targets("model.layers.1.mlp.gate_proj", layer: 1))
    let one = try config(#"{"target_modules": ["v_proj"], "layers_to_transform": 1, "layers_pattern": "layers"}"#)
    #expect(
      one.targets("model.layers.1.self_attn.v_proj", layer: 1)
        && !one.targets("model.layers.0.self_attn.v_proj", layer: 0))
  }

  @Test(arguments: [
    (#"{"use_dora": true}"#, "use_dora"),
    (#"{"modules_to_save": ["lm_head"]}"#, "modules_to_save"),
    (#"{"bias": "all"}"#, "bias"),
    (#"{"lora_bias": true}"#, "lora_bias"),
    (#"{"peft_type": "PREFIX_TUNING"}"#, "peft_type"),
    (#"{"target_modules": ["q_proj", "lm_head"]}"#, "lm_head"),
    (#"{"target_modules": "(unclosed"}"#, "target_modules"),
    (#"{"rank_pattern": {"q_proj[": 2}}"#, "q_proj["),
    (#"{"layers_to_transform": [0], "layers_pattern": "h"}"#, "layers_pattern"),
    (#"{"layer_replication": [[0, 2]]}"#, "layer_replication"),
  ])
  func refusesWhatItCannotHonourByName(_ json: String, _ named: String) {
    let e = formatError { _ = try config(json) }
    guard case .unsupported? = e else {
      Issue.record("\(json): got \(String(describing: e))")
      return
    }
    #expect(e!.description.contains(named))
  }

  @Test func acceptsNullsAndTheUsualExtras() throws {
    let c = try config(
      #"""
      {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
       "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
       "layer_replication": null, "layers_pattern": null, "layers_to_transform": null, "loftq_config": {},
       "lora_alpha": 32, "lora_dropout": 0.05, "megatron_config": null, "megatron_core": "megatron.core",
       "modules_to_save": null, "peft_type": "LORA", "r": 16, "rank_pattern": {}, "revision": null,
       "target_modules": ["v_proj", "q_proj"], "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": false}
      """#)
    #expect(c.r == 16 && c.loraAlpha == 32 && c.baseModel == "HuggingFaceTB/SmolLM2-135M-Instruct")
  }

  @Test func tensorNameVariants() throws {
    let (rows, cols) = LoRAModule.q.shape(F.tiny)
    for (a, b) in [
      ("model.layers.0.self_attn.q_proj.lora_A.weight", "model.layers.0.self_attn.q_proj.lora_B.weight"),
      (
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"
      ),
    ] {
      let d = F.peftDirectory(config: F.basicConfig, tensors: [F.Tensor(a, [2, cols]), F.Tensor(b, [rows, 2])])
      let w = try LoRALoader.load(path: d, config: F.tiny)
      #expect(Array(w.pairs.keys) == [LoRATarget(layer: 0, module: .q)], "\(a)")
    }
  }

  @Test func readsF16AndBF16() throws {
    let values: [Float] = (0..<(2 * 64)).map { Float($0) / 64 - 1 }
    let (rows, _) = LoRAModule.q.shape(F.tiny)
    let tensors = [F.Tensor(F.peftName(0, .q, "A"), [2, 64], values), F.Tensor(F.peftName(0, .q, "B"), [rows, 2])]
    let f16 = F.peftDirectory(config: F.basicConfig, weights: F.safetensors(tensors, dtype: .f16))
    #expect(try LoRALoader.load(path: f16, config: F.tiny).pairs.first!.value.a == values)  // exact in f16

    // BF16 by hand: the top 16 bits of each F32.
    var header = JSONObject()
    var data: [UInt8] = []
    for t in tensors {
      let bits = t.values.map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
      header[t.name] = .object(
        JSONObject([
          ("dtype", .string("BF16")), ("shape", .array(t.shape.map { .number($0) })),
          ("data_offsets", .array([.number(data.count), .number(data.count + bits.count * 2)])),
        ]))
      data += bits.withUnsafeBytes { Array($0) }
    }
    var bytes = F.rawSafetensors(header: JSONValue.object(header).serialized(), dataBytes: 0)
    bytes += data
    let bf16 = F.peftDirectory(config: F.basicConfig, weights: bytes)
    let w = try LoRALoader.load(path: bf16, config: F.tiny)
    #expect(w.pairs.first!.value.a == values.map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) })
  }

  @Test func writeThenReadGivesTheSameNumbers() throws {
    let targets = F.targets(layers: [0, 1], [.q, .k, .v, .o, .gate, .up, .down])
    let w = F.random(
      "round", F.tiny, targets: targets, rank: { $0.module == .down ? 8 : ($0.layer == 1 && $0.module == .q ? 2 : 4) },
      scale: { $0.module == .v ? 0.75 : ($0 == LoRATarget(layer: 0, module: .up) ? 3 : 2) })
    let dir = TinyModel.temporaryPath("written")
    try PEFTAdapter.write(w, to: dir, baseModel: "tiny")
    let back = try LoRALoader.load(path: dir, config: F.tiny)
    #expect(back.name == (dir as NSString).lastPathComponent)
    #expect(sameNumbers(w, back))
    // No staging directory left beside it.
    let parent = (dir as NSString).deletingLastPathComponent
    let stem = "." + (dir as NSString).lastPathComponent + ".tmp-"
    #expect(try FileManager.default.contentsOfDirectory(atPath: parent).allSatisfy { !$0.hasPrefix(stem) })
    // The config says it in PEFT's words.
    let cfg = try config(String(contentsOfFile: dir + "/adapter_config.json", encoding: .utf8))
    #expect(cfg.r == 4 && cfg.loraAlpha == 8 && cfg.baseModel == "tiny")
    #expect(cfg.rankPattern.map(\.key) == ["layers\\.1\\.self_attn\\.q_proj", "down_proj"])
    #expect(cfg.alphaPattern.map(\.key).contains("v_proj"))

    // Writing into an existing directory replaces its files.
    let w2 = F.random("round", F.tiny, targets: [LoRATarget(layer: 1, module: .o)], seed: 7)
    try PEFTAdapter.write(w2, to: dir)
    #expect(try sameNumbers(LoRALoader.load(path: dir, config: F.tiny), w2))
  }

  @Test func writesF16AndUnevenLayers() throws {
    let targets = [
      LoRATarget(layer: 0, module: .q), LoRATarget(layer: 1, module: .down), LoRATarget(layer: 1, module: .v),
    ]
    let w = F.random("x", F.tiny, targets: targets, seed: 3)
    let dir = TinyModel.temporaryPath("f16")
    try PEFTAdapter.write(w, to: dir, dtype: .f16)
    let back = try LoRALoader.load(path: dir, config: F.tiny)
    #expect(Set(back.pairs.keys) == Set(targets))
    for (t, p) in w.pairs {
      #expect(back.pairs[t]!.a == p.a.map { Float(Float16($0)) } && back.pairs[t]!.scale == p.scale)
    }
    let cfg = try String(contentsOfFile: dir + "/adapter_config.json", encoding: .utf8)
    #expect(cfg.contains("\"model.layers.1.mlp.down_proj\""))
  }
}
