import Foundation
import Tensor

/// Writes a GGUF v3 file: metadata in the order added, then tensor infos, then the aligned
/// tensor data. Used by the tests' tiny model and by tools that emit GGUF files.
public struct GGUFWriter {
  public var alignment = 32
  private var kv: [(String, GGUFValue)] = []
  private var tensors: [(name: String, type: GGMLType, shape: [Int], bytes: [UInt8])] = []

  public init() {}

  public mutating func set(_ key: String, _ value: GGUFValue) { kv.append((key, value)) }
  public mutating func set(_ key: String, _ s: String) { set(key, .string(s)) }
  public mutating func set(_ key: String, uint32 v: UInt32) { set(key, .uint(UInt64(v), .uint32)) }
  public mutating func set(_ key: String, float32 v: Float) { set(key, .float(Double(v), .float32)) }
  public mutating func set(_ key: String, bool v: Bool) { set(key, .bool(v)) }
  public mutating func set(_ key: String, strings: [String]) { set(key, .array(strings.map { .string($0) }, .string)) }
  public mutating func set(_ key: String, int32s: [Int32]) {
    set(key, .array(int32s.map { .int(Int64($0), .int32) }, .int32))
  }

  /// Adds a tensor of `shape` (ne[0] first) whose raw data (already in `type`'s layout) is `bytes`.
  public mutating func addTensor(_ name: String, type: GGMLType, shape: [Int], bytes: [UInt8]) {
    precondition(type.rowBytes(shape[0])! * shape.dropFirst().reduce(1, *) == bytes.count, "size mismatch for \(name)")
    tensors.append((name, type, shape, bytes))
  }
  /// Adds an F32 tensor.
  public mutating func addTensor(_ name: String, shape: [Int], floats: [Float]) {
    let bytes = floats.withUnsafeBytes { Array($0) }
    addTensor(name, type: .f32, shape: shape, bytes: bytes)
  }

  /// The whole file's bytes.
  public func bytes() -> [UInt8] {
    var out: [UInt8] = []
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    func str(_ s: String) { let u = Array(s.utf8); u64(UInt64(u.count)); out += u }
    func typeOf(_ v: GGUFValue) -> GGUFValueType {
      switch v {
      case .uint(_, let t), .int(_, let t), .float(_, let t): return t
      case .bool: return .bool
      case .string: return .string
      case .array: return .array
      }
    }
    func value(_ v: GGUFValue) {
      switch v {
      case .uint(let x, let t):
        switch t {
        case .uint8: out.append(UInt8(x))
        case .uint16: withUnsafeBytes(of: UInt16(x).littleEndian) { out += $0 }
        case .uint32: u32(UInt32(x))
        default: u64(x)
        }
      case .int(let x, let t):
        switch t {
        case .int8: out.append(UInt8(bitPattern: Int8(x)))
        case .int16: withUnsafeBytes(of: Int16(x).littleEndian) { out += $0 }
        case .int32: u32(UInt32(bitPattern: Int32(x)))
        default: u64(UInt64(bitPattern: x))
        }
      case .float(let x, let t):
        if t == .float64 { u64(x.bitPattern) } else { u32(Float(x).bitPattern) }
      case .bool(let b): out.append(b ? 1 : 0)
      case .string(let s): str(s)
      case .array(let a, let et):
        u32(et.rawValue)
        u64(UInt64(a.count))
        for e in a { value(e) }
      }
    }
    u32(0x4655_4747)
    u32(3)
    u64(UInt64(tensors.count))
    u64(UInt64(kv.count))
    for (k, v) in kv {
      str(k)
      u32(typeOf(v).rawValue)
      value(v)
    }
    var offset = 0
    var offsets: [Int] = []
    for t in tensors {
      offsets.append(offset)
      offset += (t.bytes.count + alignment - 1) / alignment * alignment
    }
    for (i, t) in tensors.enumerated() {
      str(t.name)
      u32(UInt32(t.shape.count))
      for d in t.shape { u64(UInt64(d)) }
      u32(t.type.rawValue)
      u64(UInt64(offsets[i]))
    }
    while out.count % alignment != 0 { out.append(0) }
    for (i, t) in tensors.enumerated() {
      out += t.bytes
      if i + 1 < tensors.count { while out.count % alignment != 0 { out.append(0) } }
    }
    return out
  }

  public func write(to path: String) throws {
    try Data(bytes()).write(to: URL(fileURLWithPath: path), options: .atomic)
  }
}
