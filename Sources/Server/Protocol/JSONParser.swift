/// Why a line is not a JSON document we accept.
public enum JSONParseError: Error, Equatable, Sendable {
  /// The bytes are not UTF-8 (or a `\u` escape names a lone surrogate).
  case invalidUTF8(offset: Int)
  /// The text breaks JSON's grammar at `offset` (bytes from the start of the line).
  case syntax(String, offset: Int)
  /// Arrays/objects nest deeper than the bound.
  case tooDeep(limit: Int)
  /// A number that does not fit in a Double (e.g. `1e999`).
  case numberOutOfRange(offset: Int)

  public var message: String {
    switch self {
    case .invalidUTF8(let o): return "the line is not valid UTF-8 (at byte \(o))"
    case .syntax(let what, let o): return "invalid JSON at byte \(o): \(what)"
    case .tooDeep(let limit): return "JSON nests deeper than \(limit) levels"
    case .numberOutOfRange(let o): return "the number at byte \(o) is out of range"
    }
  }
}

/// A strict RFC 8259 parser for one line. It recurses once per nesting level and refuses to go
/// past `maxDepth`, so a hostile `[[[[…` cannot exhaust the loop thread's stack; the whole line
/// is checked to be UTF-8 before parsing. Duplicate keys are refused (which one would win is
/// the classic smuggling hole).
public struct JSONParser {
  private let bytes: [UInt8]
  private var i = 0
  private var depth = 0
  private let maxDepth: Int

  public static func parse(_ line: some Collection<UInt8>, maxDepth: Int = 32) throws(JSONParseError) -> JSONValue {
    var p = JSONParser(bytes: Array(line), maxDepth: maxDepth)
    return try p.document()
  }

  private init(bytes: [UInt8], maxDepth: Int) {
    self.bytes = bytes
    self.maxDepth = maxDepth
  }

  private mutating func document() throws(JSONParseError) -> JSONValue {
    if let bad = Self.firstInvalidUTF8(bytes) { throw .invalidUTF8(offset: bad) }
    skipSpace()
    let v = try value()
    skipSpace()
    if i != bytes.count { throw .syntax("unexpected text after the value", offset: i) }
    return v
  }

  /// Offset of the first byte that breaks UTF-8, or nil.
  static func firstInvalidUTF8(_ b: [UInt8]) -> Int? {
    var i = 0
    let n = b.count
    while i < n {
      let c = b[i]
      if c < 0x80 {
        i += 1
        continue
      }
      let len: Int
      var lo: UInt8 = 0x80
      var hi: UInt8 = 0xBF
      switch c {
      case 0xC2...0xDF: len = 2
      case 0xE0:
        len = 3
        lo = 0xA0
      case 0xE1...0xEC, 0xEE...0xEF: len = 3
      case 0xED:
        len = 3
        hi = 0x9F
      case 0xF0:
        len = 4
        lo = 0x90
      case 0xF1...0xF3: len = 4
      case 0xF4:
        len = 4
        hi = 0x8F
      default: return i
      }
      if i + len > n { return i }
      if b[i + 1] < lo || b[i + 1] > hi { return i }
      for k in 2..<len where b[i + k] & 0xC0 != 0x80 { return i }
      i += len
    }
    return nil
  }

  private mutating func skipSpace() {
    while i < bytes.count {
      switch bytes[i] {
      case 0x20, 0x09, 0x0A, 0x0D: i += 1
      default: return
      }
    }
  }

  private mutating func value() throws(JSONParseError) -> JSONValue {
    guard i < bytes.count else { throw .syntax("unexpected end of line", offset: i) }
    switch bytes[i] {
    case UInt8(ascii: "{"): return try object()
    case UInt8(ascii: "["): return try array()
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): return try literal("true", .bool(true))
    case UInt8(ascii: "f"): return try literal("false", .bool(false))
    case UInt8(ascii: "n"): return try literal("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
    default: throw .syntax("unexpected character", offset: i)
    }
  }

  private mutating func literal(_ word: String, _ v: JSONValue) throws(JSONParseError) -> JSONValue {
    let w = Array(word.utf8)
    guard i + w.count <= bytes.count, bytes[i..<i + w.count].elementsEqual(w) else {
      throw .syntax("unexpected character", offset: i)
    }
    i += w.count
    return v
  }

  private mutating func enter() throws(JSONParseError) {
    depth += 1
    if depth > maxDepth { throw .tooDeep(limit: maxDepth) }
  }

  private mutating func object() throws(JSONParseError) -> JSONValue {
    try enter()
    i += 1
    var obj = JSONObject()
    skipSpace()
    if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
      i += 1
      depth -= 1
      return .object(obj)
    }
    while true {
      skipSpace()
      guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw .syntax("expected a key string", offset: i) }
      let keyAt = i
      let key = try string()
      skipSpace()
      guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw .syntax("expected ':'", offset: i) }
      i += 1
      skipSpace()
      let v = try value()
      if obj[key] != nil { throw .syntax("duplicate key \"\(key)\"", offset: keyAt) }
      obj[key] = v
      skipSpace()
      guard i < bytes.count else { throw .syntax("unexpected end of line in an object", offset: i) }
      if bytes[i] == UInt8(ascii: ",") {
        i += 1
        continue
      }
      if bytes[i] == UInt8(ascii: "}") {
        i += 1
        depth -= 1
        return .object(obj)
      }
      throw .syntax("expected ',' or '}'", offset: i)
    }
  }

  private mutating func array() throws(JSONParseError) -> JSONValue {
    try enter()
    i += 1
    var items: [JSONValue] = []
    skipSpace()
    if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
      i += 1
      depth -= 1
      return .array(items)
    }
    while true {
      skipSpace()
      items.append(try value())
      skipSpace()
      guard i < bytes.count else { throw .syntax("unexpected end of line in an array", offset: i) }
      if bytes[i] == UInt8(ascii: ",") {
        i += 1
        continue
      }
      if bytes[i] == UInt8(ascii: "]") {
        i += 1
        depth -= 1
        return .array(items)
      }
      throw .syntax("expected ',' or ']'", offset: i)
    }
  }

  private mutating func hex4() throws(JSONParseError) -> UInt32 {
    guard i + 4 <= bytes.count else { throw .syntax("short \\u escape", offset: i) }
    var v: UInt32 = 0
    for _ in 0..<4 {
      let c = bytes[i]
      let d: UInt32
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
      case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
      default: throw .syntax("bad hex digit in \\u escape", offset: i)
      }
      v = v << 4 | d
      i += 1
    }
    return v
  }

  private mutating func string() throws(JSONParseError) -> String {
    i += 1  // opening quote
    let start = i
    // Fast path: no escapes.
    while i < bytes.count {
      let c = bytes[i]
      if c == UInt8(ascii: "\"") {
        let s = String(decoding: bytes[start..<i], as: UTF8.self)
        i += 1
        return s
      }
      if c == UInt8(ascii: "\\") { break }
      if c < 0x20 { throw .syntax("control character in a string", offset: i) }
      i += 1
    }
    var out = Array(bytes[start..<i])
    while i < bytes.count {
      let c = bytes[i]
      if c == UInt8(ascii: "\"") {
        i += 1
        return String(decoding: out, as: UTF8.self)
      }
      if c < 0x20 { throw .syntax("control character in a string", offset: i) }
      if c != UInt8(ascii: "\\") {
        out.append(c)
        i += 1
        continue
      }
      let escAt = i
      i += 1
      guard i < bytes.count else { break }
      let e = bytes[i]
      i += 1
      switch e {
      case UInt8(ascii: "\""): out.append(0x22)
      case UInt8(ascii: "\\"): out.append(0x5C)
      case UInt8(ascii: "/"): out.append(0x2F)
      case UInt8(ascii: "b"): out.append(0x08)
      case UInt8(ascii: "f"): out.append(0x0C)
      case UInt8(ascii: "n"): out.append(0x0A)
      case UInt8(ascii: "r"): out.append(0x0D)
      case UInt8(ascii: "t"): out.append(0x09)
      case UInt8(ascii: "u"):
        var scalar = try hex4()
        if (0xD800...0xDBFF).contains(scalar) {
          guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
            throw .invalidUTF8(offset: escAt)
          }
          i += 2
          let low = try hex4()
          guard (0xDC00...0xDFFF).contains(low) else { throw .invalidUTF8(offset: escAt) }
          scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalar) {
          throw .invalidUTF8(offset: escAt)
        }
        out.append(contentsOf: Array(String(Unicode.Scalar(scalar)!).utf8))
      default: throw .syntax("unknown escape", offset: escAt)
      }
    }
    throw .syntax("unterminated string", offset: start - 1)
  }

  private mutating func number() throws(JSONParseError) -> JSONValue {
    let start = i
    var isInteger = true
    if bytes[i] == UInt8(ascii: "-") { i += 1 }
    func digits(_ p: inout JSONParser) -> Int {
      let s = p.i
      while p.i < p.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p.bytes[p.i]) { p.i += 1 }
      return p.i - s
    }
    guard i < bytes.count else { throw .syntax("expected a digit", offset: i) }
    if bytes[i] == UInt8(ascii: "0") {
      i += 1
    } else if digits(&self) == 0 {
      throw .syntax("expected a digit", offset: i)
    }
    if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
      isInteger = false
      i += 1
      if digits(&self) == 0 { throw .syntax("expected a digit after '.'", offset: i) }
    }
    if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
      isInteger = false
      i += 1
      if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
      if digits(&self) == 0 { throw .syntax("expected a digit in the exponent", offset: i) }
    }
    let text = String(decoding: bytes[start..<i], as: UTF8.self)
    if isInteger, let n = Int64(text) { return .integer(n) }
    guard let d = Double(text), d.isFinite else { throw .numberOutOfRange(offset: start) }
    return .double(d)
  }
}
