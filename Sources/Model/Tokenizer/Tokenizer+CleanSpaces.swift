extension Tokenizer {
  /// llama.cpp's `clean_spaces` (Hugging Face's `clean_up_tokenization_spaces`), applied to the
  /// detokenized bytes of vocabularies that ask for it (Llama 3). Three passes, each keeping the
  /// first byte as it is:
  /// 1. drop a space before `?`, `!`, `.` or `,`;
  /// 2. `a ' b` → `a'b` (a lone apostrophe between spaces loses both);
  /// 3. drop a space before `'s`, `'m`, `'re`, `'ve` (but not `'t`, `'d`, `'ll`).
  static func cleanSpaces(_ text: inout [UInt8]) {
    let space = UInt8(ascii: " ")
    let apostrophe = UInt8(ascii: "'")

    // 1.
    var count = text.count
    var kept = count > 0 ? 1 : 0
    var i = 1
    while i < count {
      let x = text[i]
      if text[i - 1] == space,
        x == UInt8(ascii: "?") || x == UInt8(ascii: "!")
          || x == UInt8(ascii: ".") || x == UInt8(ascii: ",")
      {
        kept -= 1
      }
      text[kept] = x
      kept += 1
      i += 1
    }

    // 2. In place, as llama.cpp: the space after the apostrophe is skipped and zeroed, which
    // the next step's look-behind then sees.
    count = kept
    kept = count > 0 ? 1 : 0
    i = 1
    while i < count {
      let x = text[i]
      if x == apostrophe, i + 1 < count, text[i - 1] == space, text[i + 1] == space {
        kept -= 1
        i += 1
        text[i] = 0
      }
      text[kept] = x
      kept += 1
      i += 1
    }

    // 3.
    count = kept
    kept = count > 0 ? 1 : 0
    i = 1
    while i < count {
      let x = text[i]
      if text[i - 1] == space, x == apostrophe, i + 1 < count {
        let x1 = text[i + 1]
        if x1 == UInt8(ascii: "s") || x1 == UInt8(ascii: "m") {
          kept -= 1
        } else if i + 2 < count {
          let x2 = text[i + 2]
          if (x1 == UInt8(ascii: "r") || x1 == UInt8(ascii: "v")) && x2 == UInt8(ascii: "e") {
            kept -= 1
          }
        }
      }
      text[kept] = x
      kept += 1
      i += 1
    }
    text.removeLast(text.count - kept)
  }
}
