import Model

/// Why an adapter could not be read, fitted to the base model, or written. Every case names
/// the file, and the tensor or configuration key when there is one, and says what to do.
public enum AdapterError: Error, CustomStringConvertible, Equatable, Sendable {
  /// Nothing at `path`.
  case missingFile(path: String)
  /// The file exists but could not be opened or read.
  case cannotRead(path: String, reason: String)
  /// A path that is neither a PEFT directory nor a GGUF LoRA.
  case notAnAdapter(path: String, reason: String)
  /// `adapter_config.json` (or GGUF adapter metadata) that is malformed or inconsistent.
  case badConfig(path: String, key: String, reason: String)
  /// A feature of the adapter that lorad cannot honour (DoRA, modules_to_save, aLoRA, …).
  case unsupported(path: String, feature: String, reason: String)
  /// A safetensors header that is truncated, absurdly long or not the JSON it should be.
  case corruptHeader(path: String, reason: String)
  /// A tensor whose data offsets do not lie inside the file or do not match its shape.
  case tensorOutOfBounds(path: String, tensor: String, reason: String)
  case unsupportedDType(path: String, tensor: String, dtype: String)
  /// A tensor that adapts something other than the seven projections of a Llama block.
  case unknownModule(path: String, tensor: String, module: String)
  /// A tensor that is not a LoRA A or B matrix (bias, DoRA magnitude, saved module, …).
  case unexpectedTensor(path: String, tensor: String, reason: String)
  case duplicateTensor(path: String, tensor: String)
  /// An A without its B, or a B without its A.
  case missingPair(path: String, tensor: String, missing: String)
  /// A tensor for a module the configuration does not target (or explicitly excludes).
  case notTargeted(path: String, tensor: String)
  case layerOutOfRange(path: String, tensor: String, layer: Int, layers: Int)
  /// A tensor whose shape does not fit the base model's weight it adapts.
  case shapeMismatch(path: String, tensor: String, shape: [Int], expected: [Int])
  /// A's rank differs from B's, or from the rank the configuration gives the module.
  case rankMismatch(path: String, tensor: String, rank: Int, expected: Int, reason: String)
  case nonFinite(path: String, tensor: String, index: Int)
  case architectureMismatch(path: String, adapter: String, base: String)
  /// A file with no LoRA tensors at all.
  case empty(path: String)
  /// A GGUF LoRA that the GGUF reader refused.
  case gguf(GGUFError)
  case writeFailed(path: String, reason: String)

  public var description: String {
    switch self {
    case .missingFile(let p): return "\(p): no such file or directory; check the adapter path"
    case .cannotRead(let p, let r): return "\(p): cannot read adapter file: \(r)"
    case .notAnAdapter(let p, let r): return "\(p): not a LoRA adapter: \(r)"
    case .badConfig(let p, let k, let r): return "\(p): '\(k)': \(r)"
    case .unsupported(let p, let f, let r): return "\(p): \(f) is not supported: \(r)"
    case .corruptHeader(let p, let r):
      return "\(p): corrupt safetensors header: \(r); the file is damaged or not safetensors, fetch it again"
    case .tensorOutOfBounds(let p, let t, let r):
      return "\(p): tensor '\(t)': \(r); the file is truncated or corrupt"
    case .unsupportedDType(let p, let t, let d):
      return "\(p): tensor '\(t)' has dtype \(d); lorad reads F32, F16, BF16 (and F64) adapters"
    case .unknownModule(let p, let t, let m):
      return
        "\(p): tensor '\(t)' adapts '\(m)', which is not one of the projections lorad can adapt "
        + "(\(LoRAModule.allCases.map(\.rawValue).joined(separator: ", ")))"
    case .unexpectedTensor(let p, let t, let r): return "\(p): tensor '\(t)': \(r)"
    case .duplicateTensor(let p, let t): return "\(p): tensor '\(t)' appears twice"
    case .missingPair(let p, let t, let m): return "\(p): tensor '\(t)' has no matching \(m); the adapter is incomplete"
    case .notTargeted(let p, let t):
      return
        "\(p): tensor '\(t)' adapts a module that adapter_config.json does not target; the config and the weights disagree"
    case .layerOutOfRange(let p, let t, let l, let n):
      return "\(p): tensor '\(t)' is for layer \(l), but the base model has \(n) layers; was it made for another model?"
    case .shapeMismatch(let p, let t, let s, let e):
      return "\(p): tensor '\(t)' has shape \(s), but the base model needs \(e); was it made for another model?"
    case .rankMismatch(let p, let t, let r, let e, let why):
      return "\(p): tensor '\(t)' has rank \(r), expected \(e) (\(why))"
    case .nonFinite(let p, let t, let i): return "\(p): tensor '\(t)' holds a NaN or infinity at element \(i)"
    case .architectureMismatch(let p, let a, let b):
      return "\(p): adapter is for architecture '\(a)', but the base model is '\(b)'"
    case .empty(let p): return "\(p): holds no LoRA tensors"
    case .gguf(let e): return e.description
    case .writeFailed(let p, let r): return "\(p): cannot write adapter: \(r)"
    }
  }
}
