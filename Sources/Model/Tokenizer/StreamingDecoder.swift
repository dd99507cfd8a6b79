/// Turns generated tokens into text as they come, emitting only valid UTF-8: a character whose
/// bytes are split across tokens (an emoji made of byte tokens, say) is held back until its last
/// byte arrives. Bytes that can never complete a character are emitted as U+FFFD at once.
///
/// Unlike `Tokenizer.decode`, no clean-up of spaces is applied (as llama.cpp's streaming
/// `token_to_piece`), so the pieces concatenate to exactly the tokens' bytes.
public struct StreamingDecoder: Sendable {
  public let tokenizer: Tokenizer
  public let special: Bool
  /// Bytes received but not yet emitted: at most an incomplete character's first three.
  private var pending: [UInt8] = []

  public init(tokenizer: Tokenizer, special: Bool = false) {
    self.tokenizer = tokenizer
    self.special = special
    pending.reserveCapacity(64)
  }

  /// Adds one token; returns the text that is now complete (possibly empty).
  public mutating func push(_ id: Int32) -> String {
    tokenizer.appendBytes(of: id, special: special, to: &pending)
    let complete = Self.completePrefix(pending)
    guard complete > 0 else { return "" }
    let text = String(decoding: pending[..<complete], as: UTF8.self)
    pending.removeFirst(complete)
    return text
  }

  /// Emits whatever is held back (an unfinished character becomes U+FFFD) and resets.
  public mutating func flush() -> String {
    defer { pending.removeAll(keepingCapacity: true) }
    return String(decoding: pending, as: UTF8.self)
  }

  /// The length of `bytes` without a trailing character that is incomplete but could still be
  /// completed by more bytes.
  static func completePrefix(_ bytes: [UInt8]) -> Int {
    let n = bytes.count
    // The start of the last character is at most 3 bytes back.
    var start = n - 1
    while start >= 0 && start >= n - 4 && bytes[start] & 0xC0 == 0x80 { start -= 1 }
    guard start >= 0 && start >= n - 4 else { return n }
    let lead = bytes[start]
    let needed: Int
    var second: ClosedRange<UInt8> = 0x80...0xBF
    switch lead {
    case 0xC2...0xDF: needed = 2
    case 0xE0:
      needed = 3
      second = 0xA0...0xBF
    case 0xE1...0xEC, 0xEE...0xEF: needed = 3
    case 0xED:
      needed = 3
      second = 0x80...0x9F
    case 0xF0:
      needed = 4
      second = 0x90...0xBF
    case 0xF1...0xF3: needed = 4
    case 0xF4:
      needed = 4
      second = 0x80...0x8F
    default: return n  // ASCII, or a byte that starts nothing
    }
    let have = n - start
    guard have < needed else { return n }
    if have >= 2 && !second.contains(bytes[start + 1]) { return n }  // can never complete
    return start
  }
}
