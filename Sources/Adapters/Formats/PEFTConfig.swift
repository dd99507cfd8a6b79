import Foundation
import Model

/// `adapter_config.json` of a PEFT LoRA adapter: what lorad needs from it, read as PEFT reads it.
///
/// Module paths are the base model's (`model.layers.3.self_attn.q_proj`), as PEFT matches them:
/// - `target_modules` as a list: a path is targeted when it equals an entry or ends with
///   `.entry`; as a string: `all-linear`, or a regex the whole path must match (the same for
///   `exclude_modules`, and `layers_to_transform` restricts the layers).
/// - `rank_pattern` / `alpha_pattern`: the first key, in file order, for which
///   `(.*\.)?(key)$` matches the whole path gives the module's rank / alpha; otherwise `r` /
///   `lora_alpha` (PEFT's defaults: 8 and 8).
/// - scale = alpha / r, or alpha / √r with `use_rslora`.
/// Options that change what the weights mean and that lorad cannot honour (DoRA, LoRA biases,
/// modules_to_save, …) are refused by name.
struct PEFTConfig {
  enum Modules {
    case names([String])
    case regex(String, Regex<AnyRegexOutput>)
    case allLinear

    func matches(_ path: String) -> Bool {
      switch self {
      case .allLinear: return true
      case .names(let ns): return ns.contains { path == $0 || path.hasSuffix("." + $0) }
      case .regex(_, let r): return (try? r.wholeMatch(in: path)) != nil
      }
    }
  }

  var r: Int
  var loraAlpha: Double
  var targetModules: Modules
  var excludeModules: Modules?
  /// (key, compiled `(.*\.)?(key)`, value), in file order.
  var rankPattern: [(key: String, regex: Regex<AnyRegexOutput>, value: Int)]
  var alphaPattern: [(key: String, regex: Regex<AnyRegexOutput>, value: Double)]
  var useRSLoRA: Bool
  var layersToTransform: Set<Int>?
  /// Informational: the model the adapter was trained on.
  var baseModel: String?

  static let defaultRank = 8
  static let defaultAlpha = 8.0

  init(json: JSONValue, path: String) throws {
    guard let o = json.object else {
      throw AdapterError.badConfig(path: path, key: "(file)", reason: "is not a JSON object")
    }
    func bad(_ k: String, _ why: String) -> AdapterError { .badConfig(path: path, key: k, reason: why) }
    func present(_ k: String) -> JSONValue? { o[k].flatMap { $0.isNull ? nil : $0 } }
    func refuse(_ k: String, _ why: String) -> AdapterError { .unsupported(path: path, feature: "'\(k)'", reason: why) }

    if let t = present("peft_type"), t.string?.uppercased() != "LORA" {
      throw refuse("peft_type", "this is a \(t.string ?? t.serialized()) adapter; lorad reads LoRA adapters")
    }
    if present("use_dora")?.bool == true {
      throw refuse("use_dora", "DoRA adapters rescale the base weight; lorad applies plain LoRA")
    }
    if present("lora_bias")?.bool == true { throw refuse("lora_bias", "LoRA biases are not applied by lorad") }
    if let b = present("bias"), b.string != "none" {
      throw refuse("bias", "bias \(b.serialized()) trains biases of the base; lorad applies only A and B")
    }
    if let m = present("modules_to_save"), m.array?.isEmpty != true {
      throw refuse("modules_to_save", "\(m.serialized()) replaces whole base modules; lorad keeps the base frozen")
    }
    for k in ["layer_replication", "trainable_token_indices", "alora_invocation_tokens", "target_parameters"] {
      if let v = present(k), v.array?.isEmpty != true, v.object?.count != 0 {
        throw refuse(k, "\(v.serialized()) is not something lorad can apply")
      }
    }
    if present("use_qalora")?.bool == true {
      throw refuse("use_qalora", "QA-LoRA pools the input; lorad applies plain LoRA")
    }

    if let v = present("r") {
      guard let i = v.int, i > 0 else { throw bad("r", "should be a positive integer, not \(v.serialized())") }
      r = i
    } else {
      r = Self.defaultRank
    }
    if let v = present("lora_alpha") {
      guard let d = v.double, d.isFinite else { throw bad("lora_alpha", "should be a number, not \(v.serialized())") }
      loraAlpha = d
    } else {
      loraAlpha = Self.defaultAlpha
    }
    if let v = present("use_rslora") {
      guard let b = v.bool else { throw bad("use_rslora", "should be true or false") }
      useRSLoRA = b
    } else {
      useRSLoRA = false
    }
    baseModel = present("base_model_name_or_path")?.string

    func modules(_ k: String, _ v: JSONValue) throws -> Modules {
      if let s = v.string {
        if s == "all-linear" { return .allLinear }
        do {
          return .regex(s, try Regex(s))
        } catch {
          throw refuse(k, "the pattern \(v.serialized()) is not a regular expression lorad can evaluate (\(error))")
        }
      }
      guard let a = v.array else { throw bad(k, "should be a list of module names or a regular expression") }
      var names: [String] = []
      for e in a {
        guard let s = e.string, !s.isEmpty else { throw bad(k, "entry \(e.serialized()) is not a module name") }
        let leaf = String(s.split(separator: ".").last ?? "")
        guard LoRAModule(rawValue: leaf) != nil else {
          throw AdapterError.unsupported(
            path: path, feature: "\(k) entry '\(s)'",
            reason: "lorad adapts only \(LoRAModule.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        names.append(s)
      }
      return .names(names)
    }
    if let v = present("target_modules") {
      targetModules = try modules("target_modules", v)
    } else {
      // PEFT always saves the list; a hand-written config without one is taken to target
      // whatever the weights hold.
      targetModules = .allLinear
    }
    if let v = present("exclude_modules") {
      if let s = v.string {
        do {
          excludeModules = .regex(s, try Regex(s))
        } catch {
          throw refuse(
            "exclude_modules", "the pattern \(v.serialized()) is not a regular expression lorad can evaluate")
        }
      } else if let a = v.array {
        excludeModules = .names(
          try a.map { e in
            guard let s = e.string else { throw bad("exclude_modules", "entry \(e.serialized()) is not a module name") }
            return s
          })
      } else {
        throw bad("exclude_modules", "should be a list of module names or a regular expression")
      }
    }

    func pattern<T>(_ k: String, _ value: (JSONValue) -> T?) throws -> [(
      key: String, regex: Regex<AnyRegexOutput>, value: T
    )] {
      guard let v = present(k) else { return [] }
      guard let obj = v.object else { throw bad(k, "should be an object of module pattern → value") }
      return try obj.members.map { m in
        guard let x = value(m.value) else { throw bad(k, "value of '\(m.key)' is \(m.value.serialized())") }
        do {
          return (m.key, try Regex("(.*\\.)?(\(m.key))"), x)
        } catch {
          throw refuse(k, "the key '\(m.key)' is not a regular expression lorad can evaluate")
        }
      }
    }
    rankPattern = try pattern("rank_pattern") { v in v.int.flatMap { $0 > 0 ? $0 : nil } }
    alphaPattern = try pattern("alpha_pattern") { v in v.double.flatMap { $0.isFinite ? $0 : nil } }

    if let v = present("layers_to_transform") {
      if let i = v.int {
        layersToTransform = [i]
      } else if let a = v.array, a.allSatisfy({ $0.int != nil }) {
        layersToTransform = Set(a.map { $0.int! })
      } else {
        throw bad("layers_to_transform", "should be a layer index or a list of them")
      }
      if let p = present("layers_pattern") {
        let ps = p.string.map { [$0] } ?? p.array?.compactMap(\.string) ?? []
        guard ps.contains("layers") else {
          throw refuse("layers_pattern", "\(p.serialized()) does not name Llama's 'layers'")
        }
      }
    }
  }

  /// The rank the config gives the module at `modulePath`.
  func rank(_ modulePath: String) -> Int {
    rankPattern.first { (try? $0.regex.wholeMatch(in: modulePath)) != nil }?.value ?? r
  }
  func alpha(_ modulePath: String) -> Double {
    alphaPattern.first { (try? $0.regex.wholeMatch(in: modulePath)) != nil }?.value ?? loraAlpha
  }
  /// alpha / r, or alpha / √r with rsLoRA.
  func scale(_ modulePath: String) -> Float {
    let r = Double(rank(modulePath))
    return Float(alpha(modulePath) / (useRSLoRA ? r.squareRoot() : r))
  }
  /// Whether PEFT would have put a LoRA on the module at `modulePath` (in block `layer`).
  func targets(_ modulePath: String, layer: Int) -> Bool {
    if let l = layersToTransform, !l.contains(layer) { return false }
    if let e = excludeModules, e.matches(modulePath) { return false }
    return targetModules.matches(modulePath)
  }
}
