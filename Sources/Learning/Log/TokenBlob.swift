/// Token ids and log-probabilities as compact BLOBs: little-endian Int32 / Float32, packed.
enum TokenBlob {
  static func encode(_ values: [Int32]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: values.count * 4)
    out.withUnsafeMutableBytes { raw in
      for (i, v) in values.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: i * 4, as: Int32.self) }
    }
    return out
  }

  static func encode(_ values: [Float]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: values.count * 4)
    out.withUnsafeMutableBytes { raw in
      for (i, v) in values.enumerated() {
        raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
      }
    }
    return out
  }

  /// nil when the length is not a multiple of 4 (a damaged row).
  static func int32s(_ raw: UnsafeRawBufferPointer) -> [Int32]? {
    guard raw.count % 4 == 0 else { return nil }
    return (0..<raw.count / 4).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
  }

  static func floats(_ raw: UnsafeRawBufferPointer) -> [Float]? {
    guard raw.count % 4 == 0 else { return nil }
    return (0..<raw.count / 4).map {
      Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
    }
  }
}
