import Tensor

/// One tensor of a safetensors file, as its header describes it.
struct SafetensorsTensor: Sendable {
  var name: String
  var dtype: String
  var shape: [Int]
  /// Byte range of the data from the start of the file.
  var range: Range<Int>
  var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file (huggingface/safetensors): an 8-byte little-endian header length, that
/// many bytes of JSON (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, …,
/// "__metadata__": {…}}`), then the data, offsets relative to its start. The header is read
/// with its length bounded and every tensor's range checked against the file and its shape, so a
/// corrupt file gives an `AdapterError` naming the tensor. Immutable after `init`.
final class SafetensorsFile: Sendable {
  /// The safetensors library's own bound on the header.
  static let maxHeaderBytes = 100_000_000
  /// Bytes per element of the dtypes the format defines (`elementBytes`), whether or not lorad
  /// converts them.
  static let elementBytes: [String: Int] = [
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
  ]
  /// What `floats(_:)` converts.
  static let floatDTypes: Set<String> = ["F32", "F16", "BF16", "F64"]

  let path: String
  private let file: MappedFile
  /// Tensors in header order.
  let tensors: [SafetensorsTensor]
  let metadata: [String: String]

  init(path: String) throws {
    self.path = path
    file = try MappedFile(path: path)
    let bytes = file.bytes
    let size = file.size
    guard size >= 8 else {
      throw AdapterError.corruptHeader(
        path: path, reason: "the file is \(size) bytes, shorter than the 8-byte header length")
    }
    let n = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
    guard n <= UInt64(Self.maxHeaderBytes) else {
      throw AdapterError.corruptHeader(
        path: path, reason: "header length \(n) is absurd (at most \(Self.maxHeaderBytes) bytes)")
    }
    guard n >= 2, 8 + Int(n) <= size else {
      throw AdapterError.corruptHeader(
        path: path, reason: "header length \(n) does not fit in the file of \(size) bytes")
    }
    let dataStart = 8 + Int(n)
    let json: JSONValue
    do {
      json = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart]))
    } catch {
      throw AdapterError.corruptHeader(path: path, reason: "\(error)")
    }
    guard let top = json.object else {
      throw AdapterError.corruptHeader(path: path, reason: "the header is not a JSON object")
    }
    var meta: [String: String] = [:]
    var list: [SafetensorsTensor] = []
    let dataSize = size - dataStart
    for (name, v) in top.members {
      if name == "__metadata__" {
        guard let o = v.object else {
          throw AdapterError.corruptHeader(path: path, reason: "__metadata__ is not an object")
        }
        for (k, mv) in o.members {
          guard let s = mv.string else {
            throw AdapterError.corruptHeader(path: path, reason: "__metadata__ value '\(k)' is not a string")
          }
          meta[k] = s
        }
        continue
      }
      guard let o = v.object, let dtype = o["dtype"]?.string, let shapeV = o["shape"]?.array,
        let offs = o["data_offsets"]?.array, offs.count == 2
      else {
        throw AdapterError.corruptHeader(
          path: path,
          reason: "entry '\(name)' needs \"dtype\" (string), \"shape\" (array) and \"data_offsets\" ([begin, end])")
      }
      var shape: [Int] = []
      var count = 1
      for d in shapeV {
        guard let x = d.int, x >= 0 else {
          throw AdapterError.corruptHeader(path: path, reason: "tensor '\(name)' has a bad dimension \(d.serialized())")
        }
        let (p, o) = count.multipliedReportingOverflow(by: x)
        if o || p > size {
          throw AdapterError.tensorOutOfBounds(
            path: path, tensor: name,
            reason: "shape \(shapeV.map { $0.serialized() }) holds more elements than the file")
        }
        count = p
        shape.append(x)
      }
      guard let eb = Self.elementBytes[dtype] else {
        throw AdapterError.unsupportedDType(path: path, tensor: name, dtype: dtype)
      }
      guard let begin = offs[0].int, let end = offs[1].int, begin >= 0, begin <= end else {
        throw AdapterError.tensorOutOfBounds(
          path: path, tensor: name, reason: "data_offsets \(offs.map { $0.serialized() }) are not a range")
      }
      guard end <= dataSize else {
        throw AdapterError.tensorOutOfBounds(
          path: path, tensor: name, reason: "data_offsets [\(begin), \(end)] run past the \(dataSize) bytes of data")
      }
      guard end - begin == count * eb else {
        throw AdapterError.tensorOutOfBounds(
          path: path, tensor: name,
          reason: "data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but \(dtype) \(shape) needs \(count * eb)"
        )
      }
      list.append(
        SafetensorsTensor(name: name, dtype: dtype, shape: shape, range: (dataStart + begin)..<(dataStart + end)))
    }
    // Tensors may not overlap (the format also forbids holes; lorad does not need to care).
    let sorted = list.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
    for (a, b) in zip(sorted, sorted.dropFirst()) where b.range.lowerBound < a.range.upperBound {
      throw AdapterError.tensorOutOfBounds(path: path, tensor: b.name, reason: "its data overlaps tensor '\(a.name)'")
    }
    tensors = list
    metadata = meta
  }

  /// The tensor's values as F32, in row-major order; NaN and infinities are refused.
  func floats(_ t: SafetensorsTensor) throws -> [Float] {
    guard Self.floatDTypes.contains(t.dtype) else {
      throw AdapterError.unsupportedDType(path: path, tensor: t.name, dtype: t.dtype)
    }
    let src = UnsafeRawBufferPointer(rebasing: file.bytes[t.range])
    let n = t.elementCount
    var bad: Int? = nil
    let out = [Float](unsafeUninitializedCapacity: n) { o, count in
      switch t.dtype {
      case "F32":
        if n > 0 {
          o.baseAddress!.withMemoryRebound(to: UInt8.self, capacity: n * 4) {
            $0.update(from: src.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n * 4)
          }
        }
      case "F16":  // the kernels' F16C / AVX-512 conversion (bit exact)
        if n > 0 { RowConversion.toFloat(.f16, src.baseAddress!, o.baseAddress!, n) }
      case "BF16":
        if n > 0 { RowConversion.toFloat(.bf16, src.baseAddress!, o.baseAddress!, n) }
      default:  // F64
        for i in 0..<n {
          o[i] = Float(
            Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
        }
      }
      count = n
      // NaN and ±inf have every exponent bit set: one branch-free pass, then find the first.
      var hits: UInt32 = 0
      for v in UnsafeBufferPointer(o) { hits |= (v.bitPattern & 0x7f80_0000) == 0x7f80_0000 ? 1 : 0 }
      if hits != 0 { bad = o.firstIndex { !$0.isFinite } }
    }
    if let bad { throw AdapterError.nonFinite(path: path, tensor: t.name, index: bad) }
    return out
  }
}

/// Builds a safetensors file: tensors in the order added, the header padded with spaces to a
/// multiple of 8 bytes so the data is aligned.
struct SafetensorsWriter {
  enum DType: String { case f32 = "F32", f16 = "F16" }
  private var entries: [(name: String, dtype: DType, shape: [Int], data: [UInt8])] = []
  var metadata: [String: String] = [:]

  mutating func add(_ name: String, shape: [Int], floats: [Float], as dtype: DType = .f32) {
    precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
    let data: [UInt8]
    switch dtype {
    case .f32: data = floats.withUnsafeBytes { Array($0) }
    case .f16: data = floats.map { Float16($0).bitPattern }.withUnsafeBytes { Array($0) }
    }
    entries.append((name, dtype, shape, data))
  }

  func bytes() -> [UInt8] {
    var header = JSONObject()
    if !metadata.isEmpty {
      header["__metadata__"] = .object(
        JSONObject(metadata.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))
    }
    var offset = 0
    for e in entries {
      header[e.name] = .object(
        JSONObject([
          ("dtype", .string(e.dtype.rawValue)), ("shape", .array(e.shape.map { .number($0) })),
          ("data_offsets", .array([.number(offset), .number(offset + e.data.count)])),
        ]))
      offset += e.data.count
    }
    var h = Array(JSONValue.object(header).serialized().utf8)
    while h.count % 8 != 0 { h.append(0x20) }
    var out: [UInt8] = []
    out.reserveCapacity(8 + h.count + offset)
    withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
    out += h
    for e in entries { out += e.data }
    return out
  }
}
