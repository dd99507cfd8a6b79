import Foundation
import Model
import Tensor

/// llama.cpp's GGUF LoRA files (`convert_lora_to_gguf.py`, read by `llama-adapter.cpp`):
/// `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha` (f32), and for each
/// adapted weight `blk.N.attn_q.weight` the pair `blk.N.attn_q.weight.lora_a` with ne
/// [in, r] and `….lora_b` with ne [r, out] — row-major, the same (r, in) A and (out, r) B as PEFT.
///
/// Scale as llama.cpp computes it (`llama_adapter_lora_weight::get_scale`): alpha / r with r =
/// lora_b's ne[0]; when alpha is 0 or missing, 1 (the user scale alone). One alpha serves the
/// whole file, so per-module scales exist only folded into B. Tensors ending in `_norm.weight`
/// are skipped, as llama.cpp skips them; any other tensor is refused by name.
public enum GGUFLoRA {
  public static let fileName = "adapter.gguf"

  /// Reads the GGUF LoRA at `path` and fits it to the base model described by `config`.
  public static func load(path: String, config: LlamaConfig, name: String) throws -> LoRAWeights {
    guard FileManager.default.fileExists(atPath: path) else { throw AdapterError.missingFile(path: path) }
    let f: GGUFFile
    do {
      f = try GGUFFile(path: path)
    } catch let e as GGUFError {
      throw AdapterError.gguf(e)
    }
    let type = f["general.type"]?.string ?? ""
    guard type == "adapter" else {
      throw AdapterError.notAnAdapter(
        path: path, reason: "general.type is '\(type)', not 'adapter' (a base model is not a LoRA)")
    }
    let arch = f["general.architecture"]?.string ?? ""
    guard arch == config.architecture else {
      throw AdapterError.architectureMismatch(path: path, adapter: arch, base: config.architecture)
    }
    let adapterType = f["adapter.type"]?.string ?? ""
    guard adapterType == "lora" else {
      throw AdapterError.unsupported(
        path: path, feature: "adapter.type '\(adapterType)'", reason: "lorad reads LoRA adapters")
    }
    if f["adapter.alora.invocation_tokens"] != nil {
      throw AdapterError.unsupported(
        path: path, feature: "activated LoRA (adapter.alora.invocation_tokens)",
        reason: "lorad applies an adapter to every token")
    }
    var alpha: Float = 0
    if let v = f["adapter.lora.alpha"] {
      guard let d = v.double, d.isFinite else {
        throw AdapterError.badConfig(path: path, key: "adapter.lora.alpha", reason: "should be a number")
      }
      alpha = Float(d)
    }

    var found: [LoRATarget: (a: GGUFTensor?, b: GGUFTensor?)] = [:]
    for t in f.tensors {
      let isA: Bool
      if t.name.hasSuffix(".lora_a") {
        isA = true
      } else if t.name.hasSuffix(".lora_b") {
        isA = false
      } else if t.name.hasSuffix("_norm.weight") {
        continue  // llama.cpp ignores norm vectors in LoRA files too
      } else {
        throw AdapterError.unexpectedTensor(
          path: path, tensor: t.name, reason: "is not a LoRA matrix (blk.N.<weight>.weight.lora_a / .lora_b)")
      }
      let base = String(t.name.dropLast(".lora_a".count))
      let target = try parseTarget(base, tensor: t.name, file: path)
      var e = found[target] ?? (nil, nil)
      if isA { e.a = t } else { e.b = t }
      found[target] = e
    }
    guard !found.isEmpty else { throw AdapterError.empty(path: path) }

    var pairs: [LoRATarget: LoRAPair] = [:]
    for target in found.keys.sorted() {
      let e = found[target]!
      guard let a = e.a else { throw AdapterError.missingPair(path: path, tensor: e.b!.name, missing: "lora_a") }
      guard let b = e.b else { throw AdapterError.missingPair(path: path, tensor: a.name, missing: "lora_b") }
      try LoRAFit.check(
        path: path, target: target, aName: a.name, aShape: a.shape, bName: b.name, bShape: b.shape,
        order: .columnsFirst, config: config)
      let rank = b.shape[0]
      pairs[target] = LoRAPair(
        rank: rank, rows: b.shape[1], cols: a.shape[0], scale: alpha != 0 ? alpha / Float(rank) : 1,
        a: try floats(a, path: path), b: try floats(b, path: path))
    }
    return LoRAWeights(name: name, pairs: pairs)
  }

  /// The layer and projection of a base weight name like `blk.3.attn_q.weight`.
  static func parseTarget(_ base: String, tensor: String, file: String) throws -> LoRATarget {
    let parts = base.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0, parts[3] == "weight",
      let module = LoRAModule.allCases.first(where: { $0.ggufName == parts[2] })
    else {
      throw AdapterError.unknownModule(path: file, tensor: tensor, module: base)
    }
    return LoRATarget(layer: layer, module: module)
  }

  /// A 2-D tensor's values as F32, row-major; quantized types are dequantized row by row.
  static func floats(_ t: GGUFTensor, path: String) throws -> [Float] {
    let cols = t.columns
    let rows = t.rows
    var out = [Float](repeating: 0, count: cols * rows)
    let m = WeightMatrix(type: t.type, rows: rows, cols: cols, data: t.data)
    out.withUnsafeMutableBufferPointer { o in
      for r in 0..<rows { m.dequantizeRow(r, into: o.baseAddress! + r * cols) }
    }
    if let bad = out.firstIndex(where: { !$0.isFinite }) {
      throw AdapterError.nonFinite(path: path, tensor: t.name, index: bad)
    }
    return out
  }

  /// Writes `weights` as a GGUF LoRA llama.cpp loads (`--lora`), tensors in F32 or F16.
  ///
  /// llama.cpp has one alpha per file and scale = alpha / r per tensor. When every pair's
  /// scale × rank agrees, that is the alpha and the numbers are written as they are; otherwise
  /// alpha is the first pair's scale × rank and each B is multiplied by
  /// (its scale × rank) / alpha, which gives the same ΔW. Written atomically.
  public static func write(
    _ weights: LoRAWeights, architecture: String, to path: String, type: GGMLType = .f32
  ) throws {
    precondition(type == .f32 || type == .f16, "GGUF LoRA writer supports F32 and F16")
    let targets = weights.pairs.keys.sorted()
    let products = targets.map { weights.pairs[$0]!.scale * Float(weights.pairs[$0]!.rank) }
    let alpha = products.first { $0 != 0 } ?? 1
    var w = GGUFWriter()
    w.set("general.architecture", architecture)
    w.set("general.type", "adapter")
    w.set("general.name", weights.name)
    w.set("adapter.type", "lora")
    w.set("adapter.lora.alpha", float32: alpha)
    func bytes(_ x: [Float]) -> [UInt8] {
      type == .f32 ? x.withUnsafeBytes { Array($0) } : x.map { Float16($0).bitPattern }.withUnsafeBytes { Array($0) }
    }
    for (t, k) in zip(targets, products) {
      let p = weights.pairs[t]!
      let stem = "blk.\(t.layer).\(t.module.ggufName).weight"
      let fold = k / alpha
      w.addTensor(stem + ".lora_a", type: type, shape: [p.cols, p.rank], bytes: bytes(p.a))
      w.addTensor(
        stem + ".lora_b", type: type, shape: [p.rank, p.rows], bytes: bytes(fold == 1 ? p.b : p.b.map { $0 * fold }))
    }
    try AtomicFile.write(w.bytes(), to: path)
  }
}
