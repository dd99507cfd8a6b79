/// GPT-2's byte-level alphabet: every byte 0...255 stands for one printable code point, so a
/// vocabulary of strings can hold arbitrary bytes. Printable Latin-1 bytes (`!`…`~`, `¡`…`¬`,
/// `®`…`ÿ`) stand for themselves; the other 68 (controls, space, DEL, NBSP, soft hyphen…) are
/// shifted, in byte order, to U+0100…U+0143 — so " " is `Ġ` (U+0120) and "\n" is `Ċ` (U+010A).
enum ByteLevel {
  /// The code point that stands for each byte.  // (256)
  static let scalarForByte: [UInt32] = {
    var table = [UInt32](repeating: 0, count: 256)
    var shifted: UInt32 = 256
    for byte in 0..<256 {
      if standsForItself(UInt8(byte)) {
        table[byte] = UInt32(byte)
      } else {
        table[byte] = shifted
        shifted += 1
      }
    }
    return table
  }()

  /// The inverse: the byte a code point below 0x144 stands for, or -1.  // (0x144)
  static let byteForScalar: [Int16] = {
    var table = [Int16](repeating: -1, count: 0x144)
    for (byte, scalar) in scalarForByte.enumerated() { table[Int(scalar)] = Int16(byte) }
    return table
  }()

  /// The UTF-8 of each byte's stand-in, packed: length in the low byte, then up to two bytes.
  /// (256)
  static let utf8ForByte: [UInt32] = scalarForByte.map { scalar in
    if scalar < 0x80 { return 1 | scalar << 8 }
    let lead = 0xC0 | scalar >> 6
    let trail = 0x80 | scalar & 0x3F
    return 2 | lead << 8 | trail << 16
  }

  static func standsForItself(_ byte: UInt8) -> Bool {
    (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || byte >= 0xAE
  }

  /// Appends the byte-level (stand-in) UTF-8 of `bytes` to `out`.
  @inline(__always)
  static func encode(_ byte: UInt8, into out: inout [UInt8]) {
    let packed = utf8ForByte[Int(byte)]
    out.append(UInt8(truncatingIfNeeded: packed >> 8))
    if packed & 0xFF == 2 { out.append(UInt8(truncatingIfNeeded: packed >> 16)) }
  }

  /// Decodes a vocabulary string back to the bytes it stands for, as llama.cpp does: a code
  /// point outside the alphabet is kept visible as `[UNK_BYTE_0x…<token>]`.
  static func decode(_ token: String, into out: inout [UInt8]) {
    for scalar in token.unicodeScalars {
      let value = Int(scalar.value)
      if value < byteForScalar.count, byteForScalar[value] >= 0 {
        out.append(UInt8(byteForScalar[value]))
      } else {
        out.append(contentsOf: "[UNK_BYTE_0x".utf8)
        for unit in String(scalar).utf8 {
          let hex = String(unit, radix: 16)
          if hex.count == 1 { out.append(UInt8(ascii: "0")) }
          out.append(contentsOf: hex.utf8)
        }
        out.append(contentsOf: token.utf8)
        out.append(UInt8(ascii: "]"))
      }
    }
  }
}
