import Foundation
import Model

#if canImport(Glibc)
  import Glibc
#endif

extension PEFTAdapter {
  /// Element type of written weights.
  public enum DType: Sendable { case f32, f16 }

  /// Writes `weights` as a PEFT directory that PEFT and lorad read back to the same numbers.
  ///
  /// Each pair's scale becomes alpha = scale × rank (plain LoRA). The most common (rank, alpha)
  /// becomes `r` / `lora_alpha`; others go to `rank_pattern` / `alpha_pattern`, by module name
  /// when a whole module agrees and by escaped layer path (`layers\.3\.self_attn\.q_proj`)
  /// otherwise. `target_modules` names the modules when every adapted layer has the same set
  /// (with `layers_to_transform`), or lists every module path.
  ///
  /// Crash-safe: a new directory is built beside `directory` and renamed into place; into an
  /// existing directory each file is replaced atomically (weights first, then the config).
  public static func write(
    _ weights: LoRAWeights, to directory: String, baseModel: String? = nil, dtype: DType = .f32
  ) throws {
    let cfg = configJSON(weights, baseModel: baseModel)
    var st = SafetensorsWriter()
    st.metadata = ["format": "pt"]
    for t in weights.pairs.keys.sorted() {
      let p = weights.pairs[t]!
      let prefix = "base_model.model." + modulePath(t)
      let d: SafetensorsWriter.DType = dtype == .f16 ? .f16 : .f32
      st.add(prefix + ".lora_A.weight", shape: [p.rank, p.cols], floats: p.a, as: d)
      st.add(prefix + ".lora_B.weight", shape: [p.rows, p.rank], floats: p.b, as: d)
    }
    let files: [(String, [UInt8])] = [
      (weightsFile, st.bytes()), (configFile, Array((cfg.serialized(indent: 2) + "\n").utf8)),
    ]

    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
      guard isDir.boolValue else {
        throw AdapterError.writeFailed(path: directory, reason: "exists and is not a directory")
      }
      for (name, bytes) in files { try AtomicFile.write(bytes, to: directory + "/" + name) }
      return
    }
    let parent = (directory as NSString).deletingLastPathComponent
    let tmp =
      (parent.isEmpty ? "." : parent)
      + "/.\((directory as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    do {
      try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    } catch {
      throw AdapterError.writeFailed(path: directory, reason: "\(error)")
    }
    do {
      for (name, bytes) in files { try AtomicFile.write(bytes, to: tmp + "/" + name) }
      if rename(tmp, directory) != 0 {
        throw AdapterError.writeFailed(path: directory, reason: "rename: \(String(cString: strerror(errno)))")
      }
      try AtomicFile.syncDirectory(parent.isEmpty ? "." : parent)
    } catch {
      try? FileManager.default.removeItem(atPath: tmp)
      throw error
    }
  }

  /// The adapter_config.json that gives every pair its rank and scale.
  static func configJSON(_ w: LoRAWeights, baseModel: String?) -> JSONValue {
    let targets = w.pairs.keys.sorted()
    func ra(_ t: LoRATarget) -> RankAlpha {
      let p = w.pairs[t]!
      return RankAlpha(rank: p.rank, alpha: Double(p.scale) * Double(p.rank))
    }
    // The most common (rank, alpha), ties to the first target's.
    var counts: [RankAlpha: Int] = [:]
    for t in targets { counts[ra(t), default: 0] += 1 }
    let def = targets.map(ra).max { counts[$0]! < counts[$1]! } ?? RankAlpha(rank: 8, alpha: 8)
    var rankPattern: [(String, JSONValue)] = []
    var alphaPattern: [(String, JSONValue)] = []
    for m in LoRAModule.allCases {
      let ts = targets.filter { $0.module == m }
      guard let first = ts.first else { continue }
      let uniform = ts.allSatisfy { ra($0) == ra(first) }
      let keyed: [(String, RankAlpha)] =
        uniform
        ? [(m.rawValue, ra(first))]
        : ts.map { (modulePath($0).dropFirst("model.".count).replacingOccurrences(of: ".", with: "\\."), ra($0)) }
      for (k, v) in keyed {
        if v.rank != def.rank { rankPattern.append((k, .number(v.rank))) }
        if v.alpha != def.alpha { alphaPattern.append((k, .number(v.alpha))) }
      }
    }
    let layers = Set(targets.map(\.layer)).sorted()
    let modulesByLayer = Dictionary(grouping: targets, by: \.layer).mapValues { Set($0.map(\.module)) }
    let sameEverywhere = Set(modulesByLayer.values).count <= 1
    let targetList: [String] =
      sameEverywhere
      ? LoRAModule.allCases.filter { modulesByLayer.values.first?.contains($0) ?? false }.map(\.rawValue)
      : targets.map(modulePath)
    return .object(
      JSONObject([
        ("peft_type", .string("LORA")),
        ("task_type", .string("CAUSAL_LM")),
        ("base_model_name_or_path", baseModel.map { .string($0) } ?? .null),
        ("r", .number(def.rank)),
        ("lora_alpha", .number(def.alpha)),
        ("use_rslora", .bool(false)),
        ("target_modules", .array(targetList.map { .string($0) })),
        ("layers_to_transform", sameEverywhere ? .array(layers.map { .number($0) }) : .null),
        ("rank_pattern", .object(JSONObject(rankPattern))),
        ("alpha_pattern", .object(JSONObject(alphaPattern))),
        ("bias", .string("none")),
        ("lora_dropout", .number(0)),
        ("fan_in_fan_out", .bool(false)),
        ("inference_mode", .bool(true)),
      ]))
  }

  struct RankAlpha: Hashable {
    var rank: Int
    var alpha: Double
  }
}
