/// A JSON value that keeps object keys in file order: PEFT tries `rank_pattern` and
/// `alpha_pattern` keys in the order the file lists them, so the order is part of the meaning.
/// Numbers keep their text, so a u64 offset is read exactly.
enum JSONValue: Equatable, Sendable {
  case null
  case bool(Bool)
  case number(String)
  case string(String)
  case array([JSONValue])
  case object(JSONObject)

  var string: String? { if case .string(let s) = self { return s } else { return nil } }
  var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
  var array: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
  var object: JSONObject? { if case .object(let o) = self { return o } else { return nil } }
  var isNull: Bool { self == .null }
  /// An integral number (`8`, also `8.0`), exactly.
  var int: Int? {
    guard case .number(let t) = self else { return nil }
    if let i = Int(t) { return i }
    if let d = Double(t), d.rounded() == d, abs(d) < 9e15 { return Int(d) }
    return nil
  }
  var double: Double? { if case .number(let t) = self { return Double(t) } else { return nil } }

  static func number(_ i: Int) -> JSONValue { .number(String(i)) }
  static func number(_ d: Double) -> JSONValue {
    if d.rounded() == d && abs(d) < 1e15 { return .number(String(Int(d))) }
    return .number("\(d)")
  }
}

/// A JSON object: its members in file order, keys unique.
struct JSONObject: Equatable, Sendable {
  private(set) var keys: [String] = []
  private var values: [String: JSONValue] = [:]

  init() {}
  init(_ members: [(String, JSONValue)]) { for (k, v) in members { self[k] = v } }

  subscript(key: String) -> JSONValue? {
    get { values[key] }
    set {
      if let v = newValue {
        if values.updateValue(v, forKey: key) == nil { keys.append(key) }
      } else if values.removeValue(forKey: key) != nil {
        keys.removeAll { $0 == key }
      }
    }
  }
  var members: [(key: String, value: JSONValue)] { keys.map { ($0, values[$0]!) } }
  var count: Int { keys.count }
}

/// Where and why a JSON text failed to parse.
struct JSONSyntaxError: Error, CustomStringConvertible {
  var offset: Int
  var reason: String
  var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// A strict RFC 8259 parser over bytes. Nesting is bounded; duplicate object keys are refused
/// (safetensors forbids them, and in a config they would be ambiguous).
struct JSONParser {
  static let maxDepth = 64
  private let b: UnsafeRawBufferPointer
  private var i = 0

  /// Parses exactly one value, with only whitespace around it.
  static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
    var p = JSONParser(b: bytes)
    p.skipSpace()
    let v = try p.value(depth: 0)
    p.skipSpace()
    if p.i != bytes.count { throw JSONSyntaxError(offset: p.i, reason: "text after the value") }
    return v
  }
  static func parse(_ bytes: [UInt8]) throws -> JSONValue {
    try bytes.withUnsafeBytes { try parse($0) }
  }

  private init(b: UnsafeRawBufferPointer) { self.b = b }

  private func fail(_ r: String) -> JSONSyntaxError { JSONSyntaxError(offset: i, reason: r) }

  private mutating func skipSpace() {
    while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
  }

  private mutating func literal(_ s: String, _ v: JSONValue) throws -> JSONValue {
    for c in s.utf8 {
      guard i < b.count, b[i] == c else { throw fail("expected '\(s)'") }
      i += 1
    }
    return v
  }

  private mutating func value(depth: Int) throws -> JSONValue {
    if depth > Self.maxDepth { throw fail("nested deeper than \(Self.maxDepth)") }
    guard i < b.count else { throw fail("unexpected end of text") }
    switch b[i] {
    case UInt8(ascii: "{"):
      i += 1
      var o = JSONObject()
      skipSpace()
      if i < b.count, b[i] == UInt8(ascii: "}") {
        i += 1
        return .object(o)
      }
      while true {
        skipSpace()
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
        let at = i
        let k = try string()
        skipSpace()
        guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
        i += 1
        skipSpace()
        let v = try value(depth: depth + 1)
        if o[k] != nil { throw JSONSyntaxError(offset: at, reason: "key \"\(k)\" appears twice") }
        o[k] = v
        skipSpace()
        guard i < b.count else { throw fail("unexpected end of text in an object") }
        if b[i] == UInt8(ascii: ",") {
          i += 1
        } else if b[i] == UInt8(ascii: "}") {
          i += 1
          return .object(o)
        } else {
          throw fail("expected ',' or '}'")
        }
      }
    case UInt8(ascii: "["):
      i += 1
      var a: [JSONValue] = []
      skipSpace()
      if i < b.count, b[i] == UInt8(ascii: "]") {
        i += 1
        return .array(a)
      }
      while true {
        skipSpace()
        a.append(try value(depth: depth + 1))
        skipSpace()
        guard i < b.count else { throw fail("unexpected end of text in an array") }
        if b[i] == UInt8(ascii: ",") {
          i += 1
        } else if b[i] == UInt8(ascii: "]") {
          i += 1
          return .array(a)
        } else {
          throw fail("expected ',' or ']'")
        }
      }
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): return try literal("true", .bool(true))
    case UInt8(ascii: "f"): return try literal("false", .bool(false))
    case UInt8(ascii: "n"): return try literal("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
    default: throw fail("unexpected character")
    }
  }

  private mutating func number() throws -> JSONValue {
    let start = i
    func digits() -> Int {
      let s = i
      while i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) { i += 1 }
      return i - s
    }
    if b[i] == UInt8(ascii: "-") { i += 1 }
    guard digits() > 0 else { throw fail("a number needs digits") }
    if i < b.count, b[i] == UInt8(ascii: ".") {
      i += 1
      guard digits() > 0 else { throw fail("a number needs digits after '.'") }
    }
    if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
      i += 1
      if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
      guard digits() > 0 else { throw fail("a number needs digits in its exponent") }
    }
    return .number(String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self))
  }

  private mutating func hex4() throws -> UInt32 {
    guard i + 4 <= b.count else { throw fail("truncated \\u escape") }
    var v: UInt32 = 0
    for _ in 0..<4 {
      let c = b[i]
      let d: UInt32
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
      case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
      default: throw fail("bad hex digit in \\u escape")
      }
      v = v << 4 | d
      i += 1
    }
    return v
  }

  private mutating func string() throws -> String {
    i += 1  // opening quote
    var out: [UInt8] = []
    while true {
      guard i < b.count else { throw fail("unterminated string") }
      let c = b[i]
      if c == UInt8(ascii: "\"") {
        i += 1
        break
      }
      if c < 0x20 { throw fail("control character in a string") }
      if c != UInt8(ascii: "\\") {
        out.append(c)
        i += 1
        continue
      }
      i += 1
      guard i < b.count else { throw fail("unterminated escape") }
      let e = b[i]
      i += 1
      switch e {
      case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
      case UInt8(ascii: "b"): out.append(0x08)
      case UInt8(ascii: "f"): out.append(0x0C)
      case UInt8(ascii: "n"): out.append(0x0A)
      case UInt8(ascii: "r"): out.append(0x0D)
      case UInt8(ascii: "t"): out.append(0x09)
      case UInt8(ascii: "u"):
        var u = try hex4()
        if (0xD800..<0xDC00).contains(u) {
          guard i + 2 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
            throw fail("unpaired surrogate")
          }
          i += 2
          let lo = try hex4()
          guard (0xDC00..<0xE000).contains(lo) else { throw fail("unpaired surrogate") }
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
        } else if (0xDC00..<0xE000).contains(u) {
          throw fail("unpaired surrogate")
        }
        out += Array(String(Character(Unicode.Scalar(u)!)).utf8)
      default: throw fail("unknown escape")
      }
    }
    guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
    return s
  }
}

extension JSONValue {
  /// JSON text: compact, or with `indent` spaces per level (members in their stored order).
  func serialized(indent: Int? = nil) -> String {
    var out = ""
    write(into: &out, indent: indent, level: 0)
    return out
  }

  private static func quoted(_ s: String) -> String {
    var o = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": o += "\\\""
      case "\\": o += "\\\\"
      case "\n": o += "\\n"
      case "\r": o += "\\r"
      case "\t": o += "\\t"
      default:
        if u.value < 0x20 {
          let h = String(u.value, radix: 16)
          o += "\\u" + String(repeating: "0", count: 4 - h.count) + h
        } else {
          o.unicodeScalars.append(u)
        }
      }
    }
    return o + "\""
  }

  private func write(into out: inout String, indent: Int?, level: Int) {
    let nl = indent.map { "\n" + String(repeating: " ", count: $0 * (level + 1)) } ?? ""
    let close = indent.map { "\n" + String(repeating: " ", count: $0 * level) } ?? ""
    switch self {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .number(let t): out += t
    case .string(let s): out += Self.quoted(s)
    case .array(let a):
      if a.isEmpty {
        out += "[]"
        return
      }
      out += "["
      for (n, v) in a.enumerated() {
        out += (n == 0 ? "" : ",") + nl
        v.write(into: &out, indent: indent, level: level + 1)
      }
      out += close + "]"
    case .object(let o):
      if o.count == 0 {
        out += "{}"
        return
      }
      out += "{"
      for (n, m) in o.members.enumerated() {
        out += (n == 0 ? "" : ",") + nl + Self.quoted(m.key) + (indent == nil ? ":" : ": ")
        m.value.write(into: &out, indent: indent, level: level + 1)
      }
      out += close + "}"
    }
  }
}
