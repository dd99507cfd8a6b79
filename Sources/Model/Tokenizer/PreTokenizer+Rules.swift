/// The two hand-written regex matchers. Each walks one fragment left to right; at each position
/// it tries the regex's alternatives in order and emits the longest match of the first one that
/// matches. Positions past the fragment read as `outside` (no flags), so lookaheads stop at the
/// fragment's end exactly as llama.cpp's do.
extension PreTokenizer {
  private static let apostrophe = UInt32(UInt8(ascii: "'"))
  private static let space = UInt32(UInt8(ascii: " "))
  private static let cr = UInt32(UInt8(ascii: "\r"))
  private static let lf = UInt32(UInt8(ascii: "\n"))

  /// Length of the contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`) at `pos`, or 0.
  /// `caseInsensitive` for Llama 3 / Qwen 2's `(?i:…)`; GPT-2's is lower-case only.
  @inline(__always)
  private static func contraction(
    _ s: UnsafeBufferPointer<UInt32>, _ pos: Int, _ end: Int, caseInsensitive: Bool
  ) -> Int {
    guard s[pos] == apostrophe, pos + 1 < end else { return 0 }
    func lower(_ v: UInt32) -> UInt32 {
      caseInsensitive && v >= 0x41 && v <= 0x5A ? v | 0x20 : v
    }
    let next = lower(s[pos + 1])
    switch next {
    case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
    default: break
    }
    guard pos + 2 < end else { return 0 }
    let nextNext = lower(s[pos + 2])
    switch (next, nextNext) {
    case (0x72, 0x65), (0x76, 0x65), (0x6C, 0x6C): return 3  // re ve ll
    default: return 0
    }
  }

  /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
  func splitGPT2(
    _ s: UnsafeBufferPointer<UInt32>, _ f: UnsafeBufferPointer<CodepointFlags>,
    _ range: Range<Int>, into ends: inout [Int32]
  ) {
    let end = range.upperBound
    @inline(__always) func flags(_ p: Int) -> CodepointFlags { p < end ? f[p] : .outside }
    let wordChars: CodepointFlags = [.whitespace, .letter, .number]
    var pos = range.lowerBound
    while pos < end {
      let cpt = s[pos]
      let n = Self.contraction(s, pos, end, caseInsensitive: false)
      if n > 0 {
        pos += n
        ends.append(Int32(pos))
        continue
      }
      // ` ?` — an optional leading space before the class that follows.
      let lead = cpt == Self.space ? 1 : 0
      let head = lead == 1 ? flags(pos + 1) : f[pos]
      // ` ?\p{L}+`, ` ?\p{N}+`
      if head.contains(.letter) || head.contains(.number) {
        let cls: CodepointFlags = head.contains(.letter) ? .letter : .number
        pos += lead
        while flags(pos).contains(cls) { pos += 1 }
        ends.append(Int32(pos))
        continue
      }
      // ` ?[^\s\p{L}\p{N}]+`
      if head.isDisjoint(with: wordChars) && !head.isEmpty {
        pos += lead
        while true {
          let g = flags(pos)
          guard g.isDisjoint(with: wordChars) && !g.isEmpty else { break }
          pos += 1
        }
        ends.append(Int32(pos))
        continue
      }
      var spaces = 0
      while flags(pos + spaces).contains(.whitespace) { spaces += 1 }
      if spaces > 1 && pos + spaces < end {
        // `\s+(?!\S)`: leave the last space to lead the next word.
        pos += spaces - 1
      } else if spaces > 0 {
        pos += spaces  // `\s+`
      } else {
        pos += 1  // no alternative matches: the character alone
      }
      ends.append(Int32(pos))
    }
  }

  /// Llama 3 (`maxDigits` 3) and Qwen 2 (`maxDigits` 1):
  /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}|`
  /// ` ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
  func splitLlama3(
    _ s: UnsafeBufferPointer<UInt32>, _ f: UnsafeBufferPointer<CodepointFlags>,
    _ range: Range<Int>, maxDigits: Int, into ends: inout [Int32]
  ) {
    let end = range.upperBound
    @inline(__always) func flags(_ p: Int) -> CodepointFlags { p < end ? f[p] : .outside }
    @inline(__always) func isNewline(_ p: Int) -> Bool {
      p < end && (s[p] == Self.cr || s[p] == Self.lf)
    }
    let wordChars: CodepointFlags = [.whitespace, .letter, .number]
    var pos = range.lowerBound
    while pos < end {
      let cpt = s[pos]
      let here = f[pos]
      let n = Self.contraction(s, pos, end, caseInsensitive: true)
      if n > 0 {
        pos += n
        ends.append(Int32(pos))
        continue
      }
      // `[^\r\n\p{L}\p{N}]?\p{L}+`
      if !isNewline(pos) && !here.contains(.number)
        && (here.contains(.letter) || flags(pos + 1).contains(.letter))
      {
        pos += 1
        while flags(pos).contains(.letter) { pos += 1 }
        ends.append(Int32(pos))
        continue
      }
      // `\p{N}{1,maxDigits}`: a run of numbers cut every `maxDigits`.
      if here.contains(.number) {
        var run = 0
        while flags(pos).contains(.number) {
          pos += 1
          run += 1
          if run == maxDigits {
            ends.append(Int32(pos))
            run = 0
          }
        }
        if run > 0 { ends.append(Int32(pos)) }
        continue
      }
      // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
      let lead = cpt == Self.space ? 1 : 0
      let head = lead == 1 ? flags(pos + 1) : here
      if head.isDisjoint(with: wordChars) {
        pos += lead
        while true {
          let g = flags(pos)
          guard g.isDisjoint(with: wordChars) && !g.isEmpty else { break }
          pos += 1
        }
        while isNewline(pos) { pos += 1 }
        ends.append(Int32(pos))
        continue
      }
      // Whitespace: `\s*[\r\n]+` up to the run's last newline, else `\s+(?!\S)`, else `\s+`.
      var spaces = 0
      var afterLastNewline = 0
      while flags(pos + spaces).contains(.whitespace) {
        if isNewline(pos + spaces) { afterLastNewline = pos + spaces + 1 }
        spaces += 1
      }
      if afterLastNewline > 0 {
        pos = afterLastNewline
      } else if spaces > 1 && pos + spaces < end {
        pos += spaces - 1
      } else if spaces > 0 {
        pos += spaces
      } else {
        pos += 1
      }
      ends.append(Int32(pos))
    }
  }
}
