import Foundation
import Model

/// PEFT LoRA directories: `adapter_config.json` + `adapter_model.safetensors`, as
/// `PeftModel.save_pretrained` writes them. lora_A is (r, in), lora_B is (out, r), row-major;
/// tensor names are `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight` (the
/// `base_model.model.` prefix and an adapter name before `.weight`, as in `.lora_A.default.weight`,
/// are optional).
public enum PEFTAdapter {
  public static let configFile = "adapter_config.json"
  public static let weightsFile = "adapter_model.safetensors"

  /// Reads the PEFT adapter in `directory` and fits it to the base model described by `config`.
  public static func load(directory: String, config: LlamaConfig, name: String) throws -> LoRAWeights {
    let configPath = directory + "/" + configFile
    let cfgFile = try MappedFile(path: configPath)
    let json: JSONValue
    do {
      json = try JSONParser.parse(cfgFile.bytes)
    } catch {
      throw AdapterError.badConfig(path: configPath, key: "(file)", reason: "\(error)")
    }
    let peft = try PEFTConfig(json: json, path: configPath)

    let weightsPath = directory + "/" + weightsFile
    if !FileManager.default.fileExists(atPath: weightsPath),
      FileManager.default.fileExists(atPath: directory + "/adapter_model.bin")
    {
      throw AdapterError.unsupported(
        path: directory + "/adapter_model.bin", feature: "pickled PyTorch weights",
        reason: "they cannot be read safely; save the adapter with safe_serialization=True (adapter_model.safetensors)")
    }
    let st = try SafetensorsFile(path: weightsPath)

    struct Found {
      var path: String
      var a: SafetensorsTensor?
      var b: SafetensorsTensor?
    }
    var found: [LoRATarget: Found] = [:]
    for t in st.tensors {
      let (modulePath, isA) = try parseName(t.name, file: weightsPath)
      let target = try parseTarget(modulePath, tensor: t.name, file: weightsPath)
      guard peft.targets(modulePath, layer: target.layer) else {
        throw AdapterError.notTargeted(path: weightsPath, tensor: t.name)
      }
      var f = found[target] ?? Found(path: modulePath)
      if (isA ? f.a : f.b) != nil { throw AdapterError.duplicateTensor(path: weightsPath, tensor: t.name) }
      if isA { f.a = t } else { f.b = t }
      found[target] = f
    }
    guard !found.isEmpty else { throw AdapterError.empty(path: weightsPath) }

    var jobs: [(target: LoRATarget, rank: Int, scale: Float, a: SafetensorsTensor, b: SafetensorsTensor)] = []
    for target in found.keys.sorted() {
      let f = found[target]!
      guard let a = f.a else { throw AdapterError.missingPair(path: weightsPath, tensor: f.b!.name, missing: "lora_A") }
      guard let b = f.b else { throw AdapterError.missingPair(path: weightsPath, tensor: a.name, missing: "lora_B") }
      try LoRAFit.check(
        path: weightsPath, target: target, aName: a.name, aShape: a.shape, bName: b.name, bShape: b.shape,
        order: .rowsFirst, config: config)
      let rank = a.shape[0]
      let want = peft.rank(f.path)
      guard rank == want else {
        throw AdapterError.rankMismatch(
          path: weightsPath, tensor: a.name, rank: rank, expected: want,
          reason: "\(configFile) gives \(f.path) rank \(want) (r or rank_pattern)")
      }
      jobs.append((target, rank, peft.scale(f.path), a, b))
    }
    // The conversions to F32 (and the finiteness checks), tensors spread over the cores.
    let todo = jobs
    let done = try parallelMap(todo.count) { i in
      let j = todo[i]
      return LoRAPair(
        rank: j.rank, rows: j.b.shape[0], cols: j.a.shape[1], scale: j.scale, a: try st.floats(j.a),
        b: try st.floats(j.b))
    }
    var pairs: [LoRATarget: LoRAPair] = [:]
    for (j, pair) in zip(jobs, done) { pairs[j.target] = pair }
    return LoRAWeights(name: name, pairs: pairs)
  }

  /// The module path and whether it is lora_A, from a tensor name; refuses anything else by name.
  /// Works on the name's bytes: a cold load parses hundreds of names on its way to a first token.
  static func parseName(_ name: String, file: String) throws -> (modulePath: String, isA: Bool) {
    let u = Array(name.utf8)
    var lo = 0, hi = u.count
    func ends(_ end: Int, _ suffix: [UInt8]) -> Bool {
      end - lo >= suffix.count && u[(end - suffix.count)..<end].elementsEqual(suffix)
    }
    if u.starts(with: Self.prefixBytes) { lo = Self.prefixBytes.count }
    if ends(hi, Self.weightBytes) {
      hi -= Self.weightBytes.count
      // `….lora_A`, or `….lora_A.<adapter name>` as PEFT's state dicts name them before saving.
      let dot = u[lo..<hi].lastIndex(of: UInt8(ascii: "."))
      for (marker, isA) in [(Self.loraABytes, true), (Self.loraBBytes, false)] {
        if ends(hi, marker) { return (String(decoding: u[lo..<(hi - marker.count)], as: UTF8.self), isA) }
        if let d = dot, ends(d, marker) { return (String(decoding: u[lo..<(d - marker.count)], as: UTF8.self), isA) }
      }
    }
    if name.contains("lora_embedding_") {
      throw AdapterError.unknownModule(path: file, tensor: name, module: "embed_tokens")
    }
    if name.contains("lora_magnitude_vector") {
      throw AdapterError.unsupported(path: file, feature: "DoRA ('\(name)')", reason: "lorad applies plain LoRA")
    }
    throw AdapterError.unexpectedTensor(
      path: file, tensor: name,
      reason: "is not a LoRA matrix (…<module>.lora_A.weight / …lora_B.weight); lorad cannot apply it")
  }
  static let prefixBytes = Array("base_model.model.".utf8), weightBytes = Array(".weight".utf8)
  static let loraABytes = Array(".lora_A".utf8), loraBBytes = Array(".lora_B".utf8)

  /// The layer and projection of a module path like `model.layers.3.self_attn.q_proj`: the
  /// last component names the projection, the one after `layers` the block.
  static func parseTarget(_ modulePath: String, tensor: String, file: String) throws -> LoRATarget {
    let parts = modulePath.utf8.split(separator: UInt8(ascii: "."))
    guard let leaf = parts.last, let module = LoRAModule(rawValue: String(Substring(leaf))) else {
      throw AdapterError.unknownModule(path: file, tensor: tensor, module: modulePath)
    }
    guard let i = parts.firstIndex(where: { $0.elementsEqual("layers".utf8) }), i + 1 < parts.count,
      let layer = Int(Substring(parts[i + 1])), layer >= 0
    else {
      throw AdapterError.unknownModule(path: file, tensor: tensor, module: modulePath)
    }
    return LoRATarget(layer: layer, module: module)
  }

  /// The PEFT module path of a target in a Llama model.
  static func modulePath(_ t: LoRATarget) -> String {
    let group: String
    switch t.module {
    case .q, .k, .v, .o: group = "self_attn"
    case .gate, .up, .down: group = "mlp"
    }
    return "model.layers.\(t.layer).\(group).\(t.module.rawValue)"
  }
}
