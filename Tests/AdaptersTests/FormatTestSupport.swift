import Foundation
import Model
import TestSupport

@testable import Adapters

/// Base-model configs, adapter builders and file helpers for the format tests.
enum FormatFixture {
  /// A `LlamaConfig` of the given shape, read from a metadata-only GGUF (the config needs no
  /// weights but the embedding's shape).
  static func config(layers: Int, dim: Int, heads: Int, kvHeads: Int, ffn: Int) -> LlamaConfig {
    var w = GGUFWriter()
    w.set("general.architecture", "llama")
    w.set("llama.block_count", uint32: UInt32(layers))
    w.set("llama.embedding_length", uint32: UInt32(dim))
    w.set("llama.feed_forward_length", uint32: UInt32(ffn))
    w.set("llama.attention.head_count", uint32: UInt32(heads))
    w.set("llama.attention.head_count_kv", uint32: UInt32(kvHeads))
    w.addTensor("token_embd.weight", shape: [dim, 2], floats: [Float](repeating: 0, count: dim * 2))
    let path = TinyModel.temporaryPath("config.gguf")
    try! w.write(to: path)
    return try! LlamaConfig(gguf: GGUFFile(path: path))
  }

  /// 2 layers, dim 64, 4 heads / 2 kv heads of 16, ffn 128: q (64, 64), k/v (32, 64), down (64, 128).
  static let tiny = config(layers: 2, dim: 64, heads: 4, kvHeads: 2, ffn: 128)
  /// SmolLM2-135M's shapes, for the committed fixtures.
  static let smol = config(layers: 30, dim: 576, heads: 9, kvHeads: 3, ffn: 1536)

  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
  static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

  /// A fresh, existing, empty directory.
  static func directory(_ name: String = "adapter") -> String {
    let p = TinyModel.temporaryPath(name)
    try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
  }

  /// Random weights for `targets` of `config`, with each target's rank and scale.
  static func random(
    _ name: String = "x", _ config: LlamaConfig, targets: [LoRATarget], rank: (LoRATarget) -> Int = { _ in 4 },
    scale: (LoRATarget) -> Float = { _ in 2 }, seed: UInt64 = 1
  ) -> LoRAWeights {
    var rng = Xoshiro256(seed: seed)
    func r(_ n: Int) -> [Float] { (0..<n).map { _ in rng.nextUnit() * 2 - 1 } }
    var pairs: [LoRATarget: LoRAPair] = [:]
    for t in targets {
      let (rows, cols) = t.module.shape(config)
      let k = rank(t)
      pairs[t] = LoRAPair(rank: k, rows: rows, cols: cols, scale: scale(t), a: r(k * cols), b: r(rows * k))
    }
    return LoRAWeights(name: name, pairs: pairs)
  }

  static func targets(layers: [Int], _ modules: [LoRAModule]) -> [LoRATarget] {
    layers.flatMap { l in modules.map { LoRATarget(layer: l, module: $0) } }
  }

  /// A tensor to put in a hand-made safetensors file.
  struct Tensor {
    var name: String
    var shape: [Int]
    var values: [Float]
    init(_ name: String, _ shape: [Int], _ values: [Float]? = nil) {
      self.name = name
      self.shape = shape
      self.values = values ?? (0..<shape.reduce(1, *)).map { Float($0 % 7) * 0.125 - 0.25 }
    }
  }

  /// The safetensors name of `module` of `layer` in PEFT's layout.
  static func peftName(_ layer: Int, _ m: LoRAModule, _ ab: String) -> String {
    "base_model.model." + PEFTAdapter.modulePath(LoRATarget(layer: layer, module: m)) + ".lora_\(ab).weight"
  }

  /// A and B tensors of the right shapes for `module` of `layer` of `config` at `rank`.
  static func pair(_ layer: Int, _ m: LoRAModule, rank: Int, _ c: LlamaConfig = tiny) -> [Tensor] {
    let (rows, cols) = m.shape(c)
    return [Tensor(peftName(layer, m, "A"), [rank, cols]), Tensor(peftName(layer, m, "B"), [rows, rank])]
  }

  static func safetensors(_ tensors: [Tensor], dtype: SafetensorsWriter.DType = .f32) -> [UInt8] {
    var w = SafetensorsWriter()
    for t in tensors { w.add(t.name, shape: t.shape, floats: t.values, as: dtype) }
    return w.bytes()
  }

  /// A PEFT directory holding `config` as adapter_config.json and `weights` as the safetensors.
  static func peftDirectory(config: String, weights: [UInt8]?) -> String {
    let d = directory()
    try! Data(config.utf8).write(to: URL(fileURLWithPath: d + "/" + PEFTAdapter.configFile))
    if let weights { try! Data(weights).write(to: URL(fileURLWithPath: d + "/" + PEFTAdapter.weightsFile)) }
    return d
  }

  static func peftDirectory(config: String, tensors: [Tensor]) -> String {
    peftDirectory(config: config, weights: safetensors(tensors))
  }

  /// A safetensors file made of a raw header (JSON text) and `dataBytes` zero bytes of data.
  static func rawSafetensors(header: String, dataBytes: Int) -> [UInt8] {
    var h = Array(header.utf8)
    while h.count % 8 != 0 { h.append(0x20) }
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
    return out + h + [UInt8](repeating: 0, count: dataBytes)
  }

  static let basicConfig = #"{"r": 2, "lora_alpha": 4, "target_modules": ["q_proj", "v_proj"]}"#
}

/// The `AdapterError` that `body` throws (nil if it succeeds or throws something else).
func formatError(_ body: () throws -> Void) -> AdapterError? {
  do {
    try body()
    return nil
  } catch let e as AdapterError {
    return e
  } catch {
    return nil
  }
}

/// Whether two adapters hold the same targets with the same rank, shape, scale and values.
func sameNumbers(_ x: LoRAWeights, _ y: LoRAWeights, scaleTolerance: Float = 0) -> Bool {
  guard Set(x.pairs.keys) == Set(y.pairs.keys) else { return false }
  return x.pairs.allSatisfy { t, p in
    let q = y.pairs[t]!
    return p.rank == q.rank && p.rows == q.rows && p.cols == q.cols && abs(p.scale - q.scale) <= scaleTolerance
      && p.a == q.a && p.b == q.b
  }
}
