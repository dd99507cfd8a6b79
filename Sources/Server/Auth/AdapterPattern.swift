/// An adapter name or glob a key may use: `support`, `legal*`, `team-?-v2`, `*`. `*` matches any
/// run of characters (none included), `?` exactly one; everything else matches itself. The
/// version of a request (`name@N`) plays no part: a key that may use a name may use its versions.
public struct AdapterPattern: Sendable, Equatable, CustomStringConvertible {
  public let text: String
  private let pattern: [UInt8]

  /// Nil when `text` holds a character adapter names cannot (they are [A-Za-z0-9_.-]).
  public init?(_ text: String) {
    guard !text.isEmpty, text.utf8.count <= 100 else { return nil }
    for c in text.unicodeScalars {
      switch c {
      case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "-", "*", "?": continue
      default: return nil
      }
    }
    self.text = text
    pattern = Array(text.utf8)
  }

  public var description: String { text }

  /// Whether `name` matches: linear-time wildcard matching (on a mismatch after a `*`, the star
  /// takes one more character and matching resumes), so no pattern makes it slow.
  public func matches(_ name: String) -> Bool {
    let s = Array(name.utf8)
    var p = 0
    var i = 0
    var star = -1  // position in the pattern just after the last '*'
    var starMatch = 0  // where in `s` that '*' stopped
    let asterisk = UInt8(ascii: "*")
    let question = UInt8(ascii: "?")
    while i < s.count {
      if p < pattern.count && (pattern[p] == question || pattern[p] == s[i]) {
        p += 1
        i += 1
      } else if p < pattern.count && pattern[p] == asterisk {
        star = p + 1
        starMatch = i
        p += 1
      } else if star >= 0 {
        starMatch += 1
        i = starMatch
        p = star
      } else {
        return false
      }
    }
    while p < pattern.count && pattern[p] == asterisk { p += 1 }
    return p == pattern.count
  }
}
