/// Why a GGUF file could not be read: each case names the file and the field, and says what to do.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
  case cannotOpen(path: String, reason: String)
  case badMagic(path: String, found: UInt32)
  case unsupportedVersion(path: String, version: UInt32)
  case truncated(path: String, field: String, offset: Int)
  case absurdCount(path: String, field: String, count: UInt64)
  case badValueType(path: String, key: String, type: UInt32)
  case badUTF8(path: String, field: String)
  case unknownTensorType(path: String, tensor: String, type: UInt32)
  case badTensorShape(path: String, tensor: String, reason: String)
  case tensorOutOfBounds(path: String, tensor: String)
  case duplicate(path: String, field: String)
  case missingKey(path: String, key: String)
  case wrongKeyType(path: String, key: String, expected: String)
  case missingTensor(path: String, tensor: String)
  case wrongTensor(path: String, tensor: String, reason: String)

  public var description: String {
    switch self {
    case .cannotOpen(let p, let r): return "\(p): cannot open GGUF file: \(r)"
    case .badMagic(let p, let m):
      return "\(p): not a GGUF file (magic 0x\(String(m, radix: 16)), expected 'GGUF'); is this the right file?"
    case .unsupportedVersion(let p, let v):
      return "\(p): GGUF version \(v) is not supported (lorad reads versions 2 and 3)"
    case .truncated(let p, let f, let o):
      return
        "\(p): file is truncated or corrupt: \(f) runs past the end of the file (at byte \(o)); fetch the file again"
    case .absurdCount(let p, let f, let c):
      return "\(p): corrupt file: \(f) is \(c), more than the file could hold"
    case .badValueType(let p, let k, let t): return "\(p): metadata '\(k)' has unknown value type \(t)"
    case .badUTF8(let p, let f): return "\(p): \(f) is not valid UTF-8"
    case .unknownTensorType(let p, let n, let t):
      return
        "\(p): tensor '\(n)' has type \(t), which lorad does not support (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)"
    case .badTensorShape(let p, let n, let r): return "\(p): tensor '\(n)': \(r)"
    case .tensorOutOfBounds(let p, let n):
      return "\(p): tensor '\(n)' lies past the end of the file; the file is truncated"
    case .duplicate(let p, let f): return "\(p): \(f) appears twice"
    case .missingKey(let p, let k): return "\(p): metadata key '\(k)' is missing"
    case .wrongKeyType(let p, let k, let e): return "\(p): metadata key '\(k)' should be \(e)"
    case .missingTensor(let p, let n): return "\(p): tensor '\(n)' is missing"
    case .wrongTensor(let p, let n, let r): return "\(p): tensor '\(n)': \(r)"
    }
  }
}
