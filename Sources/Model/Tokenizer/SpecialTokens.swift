/// Cuts special tokens out of the text before pre-tokenization, as llama.cpp's
/// `tokenizer_st_partition`: the special tokens (control, user-defined and unknown) are taken
/// one after another, longest first; each claims every leftmost, non-overlapping occurrence that
/// lies wholly in text not yet claimed. What remains between claims is ordinary text.
///
/// With `parseSpecial` false only user-defined tokens are cut out; control and unknown tokens
/// are then ordinary text. Matching is on UTF-8 bytes; since both sides are valid UTF-8, every
/// match starts and ends on a scalar boundary.
struct SpecialTokens: Sendable {
  /// A piece of the partitioned text: a byte range of ordinary text, or a special token.
  enum Fragment: Equatable {
    case text(Range<Int>)
    case token(Int32)
  }

  /// One special token, in matching order.
  private struct Entry: Sendable {
    var id: Int32
    var text: [UInt8]
    /// User-defined tokens are cut out even when special tokens are not parsed.
    var alwaysParsed: Bool
  }

  /// Longest text first; ties by id (llama.cpp's order among equal lengths is unspecified).
  private let entries: [Entry]
  /// Entry indices by first byte, in matching order.  // (256)
  private let byFirstByte: [[Int32]]

  var count: Int { entries.count }

  init(_ tokens: [(id: Int32, text: String, alwaysParsed: Bool)]) {
    let entries = tokens.map {
      Entry(id: $0.id, text: Array($0.text.utf8), alwaysParsed: $0.alwaysParsed)
    }
    .filter { !$0.text.isEmpty }
    .sorted { $0.text.count != $1.text.count ? $0.text.count > $1.text.count : $0.id < $1.id }
    var byFirstByte = [[Int32]](repeating: [], count: 256)
    for (k, entry) in entries.enumerated() { byFirstByte[Int(entry.text[0])].append(Int32(k)) }
    self.entries = entries
    self.byFirstByte = byFirstByte
  }

  /// Appends the fragments of `bytes`, in order, to `fragments`. Empty text gives none.
  func partition(
    _ bytes: UnsafeBufferPointer<UInt8>, parseSpecial: Bool, into fragments: inout [Fragment]
  ) {
    let n = bytes.count
    guard n > 0 else { return }
    // Every occurrence of every special token, as (entry, position): positions ascend.
    var found: [(entry: Int32, at: Int)] = []
    if !entries.isEmpty {
      for p in 0..<n {
        let candidates = byFirstByte[Int(bytes[p])]
        if candidates.isEmpty { continue }
        for k in candidates {
          let entry = entries[Int(k)]
          guard parseSpecial || entry.alwaysParsed, p + entry.text.count <= n else { continue }
          var same = true
          for (i, byte) in entry.text.enumerated() where bytes[p + i] != byte {
            same = false
            break
          }
          if same { found.append((k, p)) }
        }
      }
    }
    if found.isEmpty {
      fragments.append(.text(0..<n))
      return
    }
    // Claim, token by token in matching order, what the sequential search would cut out.
    found.sort { $0.entry != $1.entry ? $0.entry < $1.entry : $0.at < $1.at }
    var claimed = [Bool](repeating: false, count: n)
    var claims: [(at: Int, entry: Int32)] = []
    var current: Int32 = -1
    var cursor = 0
    for (k, p) in found {
      if k != current {
        current = k
        cursor = 0
      }
      let length = entries[Int(k)].text.count
      guard p >= cursor, !claimed[p..<(p + length)].contains(true) else { continue }
      for i in p..<(p + length) { claimed[i] = true }
      claims.append((p, k))
      cursor = p + length
    }
    claims.sort { $0.at < $1.at }
    var start = 0
    for (p, k) in claims {
      if p > start { fragments.append(.text(start..<p)) }
      fragments.append(.token(entries[Int(k)].id))
      start = p + entries[Int(k)].text.count
    }
    if start < n { fragments.append(.text(start..<n)) }
  }
}
