/// How repetitive a text is, the two ways the gate looks at a sample: the share of its words
/// that are distinct, and how well it compresses (an LZ77 estimate: repeated text costs a few
/// bytes per match instead of its length). Degenerate answers — `1. 1. 1. …`, one phrase over
/// and over — score low on both.
public enum Repetition {
  /// Distinct words / words (case-folded, split on whitespace); 1 for an empty text.
  public static func uniqueWordShare(_ text: String) -> Double {
    let words = text.lowercased().split(whereSeparator: { $0.isWhitespace })
    guard !words.isEmpty else { return 1 }
    return Double(Set(words).count) / Double(words.count)
  }

  /// Estimated compressed size / raw size of the UTF-8 bytes (about 1 for text without
  /// repeats, toward 0 for a repeated phrase): a greedy LZ77 parse over the whole text with
  /// matches of at least 4 bytes found through a hash of their first 4 bytes, a literal costing
  /// 1 byte and a match 3. 1 for texts under 8 bytes.
  public static func compressionRatio(_ text: String) -> Double {
    let b = Array(text.utf8)
    let n = b.count
    guard n >= 8 else { return 1 }
    let bits = 12
    var head = [Int](repeating: -1, count: 1 << bits)
    func hash(_ i: Int) -> Int {
      let v = UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
      return Int((v &* 2_654_435_761) >> UInt32(32 - bits))
    }
    var cost = 0
    var i = 0
    while i < n {
      if i + 4 <= n {
        let h = hash(i)
        let j = head[h]
        head[h] = i
        if j >= 0 {
          var len = 0
          while i + len < n && b[j + len] == b[i + len] && len < 258 { len += 1 }
          if len >= 4 {
            cost += 3
            // Index the positions inside the match so later repeats find them too.
            for k in (i + 1)..<min(i + len, n - 3) { head[hash(k)] = k }
            i += len
            continue
          }
        }
      }
      cost += 1
      i += 1
    }
    return Double(cost) / Double(n)
  }
}
