import Testing

@testable import Model

/// The word splits of each pre-tokenizer on strings that exercise every alternative of its
/// regex. Expected splits agree with llama.cpp (checked through its ids on these strings and on
/// 3,000 random ones per pre-tokenizer when this was written).
struct TokenizerPreTokenizerTests {
  let smollm = PreTokenizer(kind: .smollm)
  let llama3 = PreTokenizer(kind: .llama3)
  let qwen2 = PreTokenizer(kind: .qwen2)

  @Test func contractionsAreLowerCaseOnlyForGPT2StyleSmolLM() {
    #expect(
      smollm.words("I'm sure you'LL see it's")
        == ["I", "'m", " sure", " you", "'", "LL", " see", " it", "'s"])
    #expect(smollm.words("don't DON'T 've") == ["don", "'t", " DON", "'", "T", " '", "ve"])
  }

  @Test func contractionsAreCaseInsensitiveForLlama3AndQwen2() {
    for p in [llama3, qwen2] {
      #expect(
        p.words("I'm sure you'LL see it's")
          == ["I", "'m", " sure", " you", "'LL", " see", " it", "'s"])
      #expect(p.words("don't DON'T 've") == ["don", "'t", " DON", "'T", " '", "ve"])
      #expect(p.words("'s") == ["'s"])
    }
  }

  @Test func digitRuns() {
    // SmolLM and Qwen 2 isolate every digit; Llama 3 cuts runs into threes.
    #expect(smollm.words("abc 12345 67") == ["abc", " ", "1", "2", "3", "4", "5", " ", "6", "7"])
    #expect(llama3.words("abc 12345 67") == ["abc", " ", "123", "45", " ", "67"])
    #expect(qwen2.words("abc 12345 67") == ["abc", " ", "1", "2", "3", "4", "5", " ", "6", "7"])
    #expect(llama3.words("$100.00") == ["$", "100", ".", "00"])
    #expect(smollm.words("$100.00") == ["$", "1", "0", "0", ".", "0", "0"])
    // \p{N} is every number, not only ASCII digits.
    #expect(smollm.words("٣٤٥ ½") == ["٣", "٤", "٥", " ", "½"])
    #expect(llama3.words("٣٤٥ ½") == ["٣٤٥", " ", "½"])
  }

  @Test func whitespaceRunsLeaveTheirLastSpaceToTheNextWord() {
    for p in [smollm, llama3, qwen2] {
      #expect(p.words("x  y   z") == ["x", " ", " y", "  ", " z"])
      #expect(p.words("tail  ") == ["tail", "  "])
      #expect(p.words("Hello,  world") == ["Hello", ",", " ", " world"])
    }
  }

  @Test func newlines() {
    // GPT-2 style: newlines are plain whitespace; only " " may lead a word.
    #expect(smollm.words("a\n\nb") == ["a", "\n", "\n", "b"])
    #expect(smollm.words("  \n  word") == ["  \n ", " word"])
    #expect(smollm.words("hello\tworld") == ["hello", "\t", "world"])
    #expect(smollm.words("\r\n\r\n  x") == ["\r\n\r\n ", " x"])
    #expect(smollm.words("wow!!\n\n") == ["wow", "!!", "\n\n"])
    // Llama 3 / Qwen 2: whitespace up to the last newline is one word; punctuation takes the
    // newlines after it; any other non-letter may lead a word.
    for p in [llama3, qwen2] {
      #expect(p.words("a\n\nb") == ["a", "\n\n", "b"])
      #expect(p.words("  \n  word") == ["  \n", " ", " word"])
      #expect(p.words("hello\tworld") == ["hello", "\tworld"])
      #expect(p.words("\r\n\r\n  x") == ["\r\n\r\n", " ", " x"])
      #expect(p.words("wow!!\n\n") == ["wow", "!!\n\n"])
      #expect(p.words(" !!\n\nx") == [" !!\n\n", "x"])
    }
  }

  @Test func unicodeLettersAndMarks() {
    for p in [smollm, llama3, qwen2] {
      #expect(p.words("émigré naïve") == ["émigré", " naïve"])
      #expect(p.words("你好世界 ok") == ["你好世界", " ok"])
      #expect(p.words("🦙🦙 x") == ["🦙🦙", " x"])
      #expect(p.words("Привет, мир") == ["Привет", ",", " мир"])
    }
    // A combining mark (\p{M}) is not a letter: it ends a letter run. GPT-2 style makes it
    // punctuation-like; Llama 3 lets it lead the next letters.
    #expect(smollm.words("e\u{301}t\u{e9}") == ["e", "\u{301}", "t\u{e9}"])
    #expect(llama3.words("e\u{301}t\u{e9}") == ["e", "\u{301}t\u{e9}"])
    #expect(smollm.words("don\u{2019}t") == ["don", "\u{2019}", "t"])
    #expect(llama3.words("don\u{2019}t") == ["don", "\u{2019}t"])
  }

  @Test func wordsCoverTheText() {
    let text = "  Mixed 123abc\t\tdon't\r\n\n …ünï 🦙\u{3000}end  "
    for p in [smollm, llama3, qwen2] { #expect(p.words(text).joined() == text) }
  }

  @Test func codepointFlagsFollowLlamaCppsUnicode15Tables() {
    #expect(CodepointFlags.of(0x41) == .letter)
    #expect(CodepointFlags.of(0x20) == [.separator, .whitespace])
    #expect(CodepointFlags.of(0x0A) == [.control, .whitespace])
    #expect(CodepointFlags.of(0x301) == .mark)
    #expect(CodepointFlags.of(0x00BD) == .number)  // ½
    #expect(CodepointFlags.of(0x3000) == [.separator, .whitespace])
    #expect(CodepointFlags.of(0x1F999) == .symbol)  // 🦙
    // Assigned in Unicode 16 (a letter to Swift), unassigned to llama.cpp.
    #expect(CodepointFlags.of(0x11BC0) == .undefined)
    #expect(CodepointFlags.of(0xFDD0) == .undefined)  // noncharacter
    #expect(CodepointFlags.of(0xE000) == .control)  // private use
  }

  @Test func unknownPreTokenizerIsRefusedByName() {
    #expect(throws: TokenizerError.self) { try PreTokenizer(name: "default") }
    #expect(PreTokenizer.Kind(name: "llama-bpe") == .llama3)
    #expect(PreTokenizer.Kind(name: "smollm") == .smollm)
    #expect(PreTokenizer.Kind(name: "qwen2") == .qwen2)
  }
}
