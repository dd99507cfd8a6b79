import Foundation
import Model
import TestSupport
import Testing

@testable import Adapters

/// Every way a PEFT adapter can be wrong gives an `AdapterError` that names the file and,
/// where there is one, the tensor.
@Suite struct AdapterErrorTests {
  typealias F = FormatFixture

  /// Loads `dir` with the tiny config; the error, which must mention every string of `names`.
  func refusal(_ dir: String, naming names: [String]) -> AdapterError? {
    let e = formatError { _ = try LoRALoader.load(path: dir, config: F.tiny) }
    guard let e else {
      Issue.record("\(dir) loaded, expected an error naming \(names)")
      return nil
    }
    for n in names { #expect(e.description.contains(n), "\(e) should name \(n)") }
    return e
  }

  static let qName = F.peftName(0, .q, "A")
  let good = F.safetensors(F.pair(0, .q, rank: 2))

  @Test func truncatedSafetensors() {
    // Cut inside the data: the last tensor runs past the end.
    let d = F.peftDirectory(config: F.basicConfig, weights: Array(good.dropLast(10)))
    let e = refusal(d, naming: [F.peftName(0, .q, "B"), "adapter_model.safetensors"])
    guard case .tensorOutOfBounds? = e else { return unexpected("\(String(describing: e))") }
    // Cut inside the header, and shorter than the length itself.
    for n in [40, 5] {
      let h = refusal(
        F.peftDirectory(config: F.basicConfig, weights: Array(good.prefix(n))), naming: ["adapter_model.safetensors"])
      guard case .corruptHeader? = h else { return unexpected("\(String(describing: h))") }
    }
  }

  @Test func absurdHeaderLength() {
    var bytes = good
    withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
    let e = refusal(
      F.peftDirectory(config: F.basicConfig, weights: bytes), naming: ["absurd", "adapter_model.safetensors"])
    guard case .corruptHeader? = e else { return unexpected("\(String(describing: e))") }
  }

  @Test(arguments: [
    #"{"x": 1"#, #"[1, 2]"#, #"{"a": {"dtype": "F32", "shape": [1]}}"#,
    #"{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}"#,
    #"{"a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "a": {"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
  ])
  func headerThatIsNotSafetensors(_ header: String) {
    let d = F.peftDirectory(config: F.basicConfig, weights: F.rawSafetensors(header: header, dataBytes: 8))
    let e = refusal(d, naming: ["adapter_model.safetensors"])
    guard case .corruptHeader? = e else { return unexpected("\(header): \(String(describing: e))") }
  }

  @Test func tensorOffsetsOutsideTheFile() {
    let name = Self.qName
    for (offsets, why) in [("[0, 4096]", "run past"), ("[8, 4]", "not a range"), ("[0, 8]", "needs 512")] {
      let header = #"{"\#(name)": {"dtype": "F32", "shape": [2, 64], "data_offsets": \#(offsets)}}"#
      let d = F.peftDirectory(config: F.basicConfig, weights: F.rawSafetensors(header: header, dataBytes: 512))
      let e = refusal(d, naming: [name, why])
      guard case .tensorOutOfBounds? = e else { return unexpected("\(offsets): \(String(describing: e))") }
    }
    let overlap =
      #"{"\#(name)": {"dtype": "F32", "shape": [2, 64], "data_offsets": [0, 512]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [504, 512]}}"#
    let e = refusal(
      F.peftDirectory(config: F.basicConfig, weights: F.rawSafetensors(header: overlap, dataBytes: 512)),
      naming: ["overlaps"])
    guard case .tensorOutOfBounds? = e else { return unexpected("\(String(describing: e))") }
  }

  @Test func unsupportedDType() {
    for dtype in ["I32", "F8_E4M3", "Q4"] {
      let n = 128 * (dtype == "Q4" ? 2 : (dtype == "I32" ? 4 : 1))
      let header = #"""
        {"\#(Self.qName)": {"dtype": "\#(dtype)", "shape": [2, 64], "data_offsets": [0, \#(n)]},
         "\#(F.peftName(0, .q, "B"))": {"dtype": "F32", "shape": [64, 2], "data_offsets": [\#(n), \#(n + 512)]}}
        """#
      let d = F.peftDirectory(config: F.basicConfig, weights: F.rawSafetensors(header: header, dataBytes: n + 512))
      let e = refusal(d, naming: [Self.qName, dtype])
      guard case .unsupportedDType? = e else { return unexpected("\(dtype): \(String(describing: e))") }
    }
  }

  @Test func wrongShapeForTheBase() {
    let (rows, _) = LoRAModule.q.shape(F.tiny)
    let d = F.peftDirectory(
      config: F.basicConfig, tensors: [F.Tensor(Self.qName, [2, 65]), F.Tensor(F.peftName(0, .q, "B"), [rows, 2])])
    let e = refusal(d, naming: [Self.qName, "[2, 65]", "[2, 64]"])
    guard case .shapeMismatch? = e else { return unexpected("\(String(describing: e))") }
    let b = F.peftDirectory(
      config: F.basicConfig, tensors: [F.Tensor(Self.qName, [2, 64]), F.Tensor(F.peftName(0, .q, "B"), [32, 2])])
    guard case .shapeMismatch(_, _, [32, 2], [64, 2])? = refusal(b, naming: [F.peftName(0, .q, "B")]) else {
      return unexpected()
    }
  }

  @Test func rankMismatches() {
    // The config says r = 2; the tensors have rank 3.
    let d = F.peftDirectory(config: F.basicConfig, tensors: F.pair(0, .q, rank: 3))
    guard case .rankMismatch(_, _, 3, 2, _)? = refusal(d, naming: [Self.qName, "rank_pattern"]) else {
      return unexpected()
    }
    // A has rank 2, B rank 3.
    let (rows, cols) = LoRAModule.q.shape(F.tiny)
    let ab = F.peftDirectory(
      config: F.basicConfig, tensors: [F.Tensor(Self.qName, [2, cols]), F.Tensor(F.peftName(0, .q, "B"), [rows, 3])])
    guard case .rankMismatch(_, _, 3, 2, _)? = refusal(ab, naming: [F.peftName(0, .q, "B")]) else {
      return unexpected()
    }
  }

  @Test func unknownModules() {
    for (name, module) in [
      ("base_model.model.lm_head.lora_A.weight", "lm_head"),
      ("base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight", "qkv_proj"),
      ("base_model.model.model.embed_tokens.lora_embedding_A", "embed_tokens"),
      ("base_model.model.model.norm.q_proj.lora_A.weight", "norm.q_proj"),
    ] {
      let d = F.peftDirectory(config: #"{"r": 2, "target_modules": "all-linear"}"#, tensors: [F.Tensor(name, [2, 64])])
      guard case .unknownModule? = refusal(d, naming: [name, module]) else { return unexpected("\(name)") }
    }
  }

  @Test func tensorsThatAreNotLoRAMatrices() {
    let cases: [(String, (AdapterError) -> Bool)] = [
      (
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.bias",
        { if case .unexpectedTensor = $0 { true } else { false } }
      ),
      (
        "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
        { if case .unsupported = $0 { true } else { false } }
      ),
      (
        "base_model.model.model.layers.0.self_attn.q_proj.weight",
        { if case .unexpectedTensor = $0 { true } else { false } }
      ),
    ]
    for (name, match) in cases {
      let d = F.peftDirectory(config: F.basicConfig, tensors: [F.Tensor(name, [64])])
      guard let e = refusal(d, naming: [name]), match(e) else { return unexpected("\(name)") }
    }
  }

  @Test func missingFiles() {
    guard
      case .missingFile("/no/such/adapter")? = formatError({
        _ = try LoRALoader.load(path: "/no/such/adapter", config: F.tiny)
      })
    else { return unexpected() }
    // A config without weights names the weights file.
    let noWeights = F.peftDirectory(config: F.basicConfig, weights: nil)
    guard case .missingFile(let p)? = refusal(noWeights, naming: ["adapter_model.safetensors"]) else {
      return unexpected()
    }
    #expect(p == noWeights + "/adapter_model.safetensors")
    // Weights without a config name the config.
    let noConfig = F.directory()
    try! Data(good).write(to: URL(fileURLWithPath: noConfig + "/adapter_model.safetensors"))
    guard case .missingFile? = refusal(noConfig, naming: ["adapter_config.json"]) else { return unexpected() }
    // Pickled weights are refused, not attempted.
    let bin = F.peftDirectory(config: F.basicConfig, weights: nil)
    try! Data([0x80, 0x02]).write(to: URL(fileURLWithPath: bin + "/adapter_model.bin"))
    guard case .unsupported? = refusal(bin, naming: ["adapter_model.bin", "safetensors"]) else { return unexpected() }
    // An empty directory is not an adapter.
    guard case .notAnAdapter? = refusal(F.directory(), naming: ["adapter.gguf"]) else { return unexpected() }
    // Nor is a file of another kind.
    let txt = TinyModel.temporaryPath("notes.txt")
    try! Data("hello".utf8).write(to: URL(fileURLWithPath: txt))
    guard case .notAnAdapter? = refusal(txt, naming: ["notes.txt"]) else { return unexpected() }
  }

  @Test func pairsTargetsAndValues() {
    // An A without its B.
    let half = F.peftDirectory(config: F.basicConfig, tensors: [F.pair(0, .q, rank: 2)[0]])
    guard case .missingPair? = refusal(half, naming: [Self.qName, "lora_B"]) else { return unexpected() }
    // A module the config does not target.
    let k = F.peftDirectory(config: F.basicConfig, tensors: F.pair(0, .k, rank: 2))
    guard case .notTargeted? = refusal(k, naming: [F.peftName(0, .k, "A")]) else { return unexpected() }
    // A layer the base does not have.
    let deep = F.peftDirectory(config: F.basicConfig, tensors: F.pair(7, .q, rank: 2))
    guard case .layerOutOfRange(_, _, 7, 2)? = refusal(deep, naming: [F.peftName(7, .q, "A")]) else {
      return unexpected()
    }
    // The same tensor twice, under both naming styles.
    let twice = F.peftDirectory(
      config: F.basicConfig,
      tensors: F.pair(0, .q, rank: 2) + [F.Tensor("model.layers.0.self_attn.q_proj.lora_A.weight", [2, 64])])
    guard case .duplicateTensor? = refusal(twice, naming: ["model.layers.0.self_attn.q_proj.lora_A.weight"]) else {
      return unexpected()
    }
    // A NaN.
    var nan = F.pair(0, .q, rank: 2)
    nan[1].values[5] = .nan
    guard
      case .nonFinite(_, _, 5)? = refusal(
        F.peftDirectory(config: F.basicConfig, tensors: nan), naming: [F.peftName(0, .q, "B")])
    else { return unexpected() }
    // No tensors at all.
    guard
      case .empty? = refusal(F.peftDirectory(config: F.basicConfig, tensors: []), naming: ["adapter_model.safetensors"])
    else {
      return unexpected()
    }
  }

  @Test func badConfigFiles() {
    for (cfg, key) in [
      ("{not json", "adapter_config.json"), (#"{"r": 0}"#, "'r'"), (#"{"r": "eight"}"#, "'r'"),
      (#"{"lora_alpha": "x"}"#, "lora_alpha"), (#"{"target_modules": 5}"#, "target_modules"),
      (#"{"rank_pattern": {"q_proj": -1}}"#, "rank_pattern"), (#"{"use_rslora": "yes"}"#, "use_rslora"),
    ] {
      let d = F.peftDirectory(config: cfg, weights: good)
      guard case .badConfig? = refusal(d, naming: [key]) else { return unexpected("\(cfg)") }
    }
  }
}

/// Records a failed expectation (for `guard case … else { return unexpected() }`).
func unexpected(_ message: String = "") { Issue.record(Comment(rawValue: message)) }
