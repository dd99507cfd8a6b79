import Tensor

/// Reads the GGUF header, metadata and tensor infos from a mapped file, checking every read
/// against the end of the file.
struct GGUFParser {
  let path: String
  let base: UnsafeRawPointer
  let size: Int
  var pos = 0

  /// Bounds on what a sane file holds; past them the file is called corrupt.
  static let maxDims = 4
  static let maxArrayNesting = 4

  init(path: String, base: UnsafeRawPointer, size: Int) {
    self.path = path
    self.base = base
    self.size = size
  }

  private var remaining: Int { size - pos }

  private mutating func need(_ n: Int, _ field: @autoclosure () -> String) throws {
    if n < 0 || n > remaining { throw GGUFError.truncated(path: path, field: field(), offset: pos) }
  }

  private mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: @autoclosure () -> String) throws -> T {
    try need(MemoryLayout<T>.size, field())
    let v = base.loadUnaligned(fromByteOffset: pos, as: T.self)
    pos += MemoryLayout<T>.size
    return T(littleEndian: v)
  }

  private mutating func readCount(_ field: @autoclosure () -> String, minBytesEach: Int) throws -> Int {
    let n = try read(UInt64.self, field())
    if n > UInt64(remaining / max(minBytesEach, 1)) {
      throw GGUFError.absurdCount(path: path, field: field(), count: n)
    }
    return Int(n)
  }

  private mutating func readString(_ field: @autoclosure () -> String) throws -> String {
    let n = try readCount(field() + " (string length)", minBytesEach: 1)
    let buf = UnsafeRawBufferPointer(start: base + pos, count: n)
    pos += n
    // Token strings may legally hold any bytes; GGUF says UTF-8, so invalid sequences are an error.
    guard let s = String(validating: buf, as: UTF8.self) else {
      throw GGUFError.badUTF8(path: path, field: field())
    }
    return s
  }

  private mutating func readValue(type raw: UInt32, key: String, depth: Int) throws -> GGUFValue {
    guard let type = GGUFValueType(rawValue: raw) else {
      throw GGUFError.badValueType(path: path, key: key, type: raw)
    }
    switch type {
    case .uint8: return .uint(UInt64(try read(UInt8.self, key)), type)
    case .int8: return .int(Int64(try read(Int8.self, key)), type)
    case .uint16: return .uint(UInt64(try read(UInt16.self, key)), type)
    case .int16: return .int(Int64(try read(Int16.self, key)), type)
    case .uint32: return .uint(UInt64(try read(UInt32.self, key)), type)
    case .int32: return .int(Int64(try read(Int32.self, key)), type)
    case .uint64: return .uint(try read(UInt64.self, key), type)
    case .int64: return .int(try read(Int64.self, key), type)
    case .float32: return .float(Double(Float(bitPattern: try read(UInt32.self, key))), type)
    case .float64: return .float(Double(bitPattern: try read(UInt64.self, key)), type)
    case .bool:
      let b = try read(UInt8.self, key)
      if b > 1 { throw GGUFError.badValueType(path: path, key: key + " (bool byte \(b))", type: raw) }
      return .bool(b != 0)
    case .string: return .string(try readString(key))
    case .array:
      if depth >= Self.maxArrayNesting {
        throw GGUFError.absurdCount(path: path, field: key + " (array nesting)", count: UInt64(depth))
      }
      let etRaw = try read(UInt32.self, key + " (array element type)")
      guard let et = GGUFValueType(rawValue: etRaw) else {
        throw GGUFError.badValueType(path: path, key: key, type: etRaw)
      }
      let n = try readCount(key + " (array length)", minBytesEach: et.minBytes)
      var out: [GGUFValue] = []
      out.reserveCapacity(n)
      for _ in 0..<n { out.append(try readValue(type: etRaw, key: key, depth: depth + 1)) }
      return .array(out, et)
    }
  }

  mutating func parse() throws -> Parsed {
    let magic = try read(UInt32.self, "magic")
    if magic != 0x4655_4747 { throw GGUFError.badMagic(path: path, found: magic) }
    let version = try read(UInt32.self, "version")
    if version != 2 && version != 3 { throw GGUFError.unsupportedVersion(path: path, version: version) }
    // Each tensor info takes at least 8 (name) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) bytes.
    let tensorCount = try readCount("tensor_count", minBytesEach: 32)
    let kvCount = try readCount("kv_count", minBytesEach: 12)

    var metadata: [String: GGUFValue] = [:]
    var keys: [String] = []
    keys.reserveCapacity(kvCount)
    for i in 0..<kvCount {
      let key = try readString("metadata key #\(i)")
      let t = try read(UInt32.self, "type of '\(key)'")
      let v = try readValue(type: t, key: key, depth: 0)
      if metadata[key] != nil { throw GGUFError.duplicate(path: path, field: "metadata key '\(key)'") }
      metadata[key] = v
      keys.append(key)
    }

    var alignment = 32
    if let a = metadata["general.alignment"] {
      guard let ai = a.int, ai > 0, ai <= 1 << 20, ai & (ai - 1) == 0 else {
        throw GGUFError.wrongKeyType(path: path, key: "general.alignment", expected: "a power of two")
      }
      alignment = ai
    }

    struct Info { var name: String; var type: GGMLType; var shape: [Int]; var offset: UInt64 }
    var infos: [Info] = []
    infos.reserveCapacity(tensorCount)
    var seen = Set<String>()
    for i in 0..<tensorCount {
      let name = try readString("name of tensor #\(i)")
      let nd = try read(UInt32.self, "n_dims of tensor '\(name)'")
      if nd == 0 || nd > UInt32(Self.maxDims) {
        throw GGUFError.badTensorShape(
          path: path, tensor: name, reason: "\(nd) dimensions (1 to \(Self.maxDims) allowed)")
      }
      var shape: [Int] = []
      var total: UInt64 = 1
      for d in 0..<Int(nd) {
        let n = try read(UInt64.self, "dimension \(d) of tensor '\(name)'")
        if n == 0 || n > UInt64(size) * 8 {
          throw GGUFError.badTensorShape(path: path, tensor: name, reason: "dimension \(d) is \(n)")
        }
        let (p, o) = total.multipliedReportingOverflow(by: n)
        if o || p > UInt64(size) * 8 {
          throw GGUFError.badTensorShape(path: path, tensor: name, reason: "more elements than the file could hold")
        }
        total = p
        shape.append(Int(n))
      }
      let traw = try read(UInt32.self, "type of tensor '\(name)'")
      guard let type = GGMLType(rawValue: traw) else {
        throw GGUFError.unknownTensorType(path: path, tensor: name, type: traw)
      }
      if shape[0] % type.blockElements != 0 {
        throw GGUFError.badTensorShape(
          path: path, tensor: name,
          reason: "row length \(shape[0]) is not a multiple of the \(type) block size \(type.blockElements)")
      }
      let off = try read(UInt64.self, "offset of tensor '\(name)'")
      if !seen.insert(name).inserted { throw GGUFError.duplicate(path: path, field: "tensor '\(name)'") }
      infos.append(Info(name: name, type: type, shape: shape, offset: off))
    }

    let dataStart = (pos + alignment - 1) / alignment * alignment
    var tensors: [GGUFTensor] = []
    tensors.reserveCapacity(infos.count)
    for info in infos {
      let rows = info.shape.dropFirst().reduce(1, *)
      let bytes = info.type.rowBytes(info.shape[0])! * rows
      guard info.offset % UInt64(alignment) == 0 else {
        throw GGUFError.badTensorShape(
          path: path, tensor: info.name, reason: "offset \(info.offset) is not aligned to \(alignment)")
      }
      guard info.offset <= UInt64(size), dataStart + Int(info.offset) + bytes <= size else {
        throw GGUFError.tensorOutOfBounds(path: path, tensor: info.name)
      }
      let off = dataStart + Int(info.offset)
      tensors.append(
        GGUFTensor(name: info.name, type: info.type, shape: info.shape, offset: off, byteCount: bytes, data: base + off)
      )
    }
    return Parsed(version: version, metadata: metadata, keys: keys, tensors: tensors, alignment: alignment)
  }
}
