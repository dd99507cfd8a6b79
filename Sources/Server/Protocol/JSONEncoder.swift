/// Writes `JSONValue`s as compact JSON (no spaces), keys in the object's order. Non-ASCII text
/// is written as UTF-8; quotes, backslashes and control characters are escaped.
public enum JSONWriter {
  public static func write(_ v: JSONValue, into out: inout [UInt8]) {
    switch v {
    case .null: out.append(contentsOf: "null".utf8)
    case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
    case .integer(let n): out.append(contentsOf: String(n).utf8)
    case .double(let d):
      // JSON has no NaN or infinity; a non-finite value is a bug upstream, written as null.
      if d.isFinite { out.append(contentsOf: String(d).utf8) } else { out.append(contentsOf: "null".utf8) }
    case .string(let s): writeString(s, into: &out)
    case .array(let items):
      out.append(UInt8(ascii: "["))
      for (k, item) in items.enumerated() {
        if k > 0 { out.append(UInt8(ascii: ",")) }
        write(item, into: &out)
      }
      out.append(UInt8(ascii: "]"))
    case .object(let obj):
      out.append(UInt8(ascii: "{"))
      for (k, pair) in obj.pairs.enumerated() {
        if k > 0 { out.append(UInt8(ascii: ",")) }
        writeString(pair.key, into: &out)
        out.append(UInt8(ascii: ":"))
        write(pair.value, into: &out)
      }
      out.append(UInt8(ascii: "}"))
    }
  }

  public static func writeString(_ s: String, into out: inout [UInt8]) {
    let hex: [UInt8] = Array("0123456789abcdef".utf8)
    out.append(UInt8(ascii: "\""))
    for c in s.utf8 {
      switch c {
      case 0x22: out.append(contentsOf: [0x5C, 0x22])
      case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
      case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
      case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
      case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
      case 0x00..<0x20:
        out.append(contentsOf: Array("\\u00".utf8))
        out.append(hex[Int(c >> 4)])
        out.append(hex[Int(c & 0xF)])
      default: out.append(c)
      }
    }
    out.append(UInt8(ascii: "\""))
  }

  public static func string(_ v: JSONValue) -> String {
    var out: [UInt8] = []
    write(v, into: &out)
    return String(decoding: out, as: UTF8.self)
  }
}
