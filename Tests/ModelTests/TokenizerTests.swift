import Testing

@testable import Model

/// The byte-level form of plain text: each UTF-8 byte as its stand-in ("Ġ" for a space).
func byteLevel(_ text: String) -> String {
  var out = String.UnicodeScalarView()
  for byte in text.utf8 { out.append(Unicode.Scalar(ByteLevel.scalarForByte[Int(byte)])!) }
  return String(out)
}

/// A tiny vocabulary: `specials` (text, GGUF token type) first, then the 256 byte tokens in byte
/// order, then `words` (plain text). `merges` are pairs of plain text, best first.
func tinyConfig(
  pre: String = "smollm", specials: [(String, Int32)] = [], words: [String] = [],
  merges: [(String, String)], bosID: Int32? = nil, eosID: Int32? = nil,
  addBOS: Bool = false, addEOS: Bool = false
) -> TokenizerConfig {
  var tokens = specials.map(\.0)
  var types = specials.map(\.1)
  for byte in 0..<256 {
    tokens.append(String(Unicode.Scalar(ByteLevel.scalarForByte[byte])!))
    types.append(1)
  }
  tokens += words.map(byteLevel)
  types += words.map { _ in 1 }
  return TokenizerConfig(
    model: "gpt2", pre: pre, tokens: tokens, tokenTypes: types,
    merges: merges.map { byteLevel($0.0) + " " + byteLevel($0.1) },
    bosID: bosID, eosID: eosID, addBOS: addBOS, addEOS: addEOS)
}

struct TokenizerTests {
  /// The id of plain `text` as a single token.
  func id(_ t: Tokenizer, _ text: String) -> Int32 { t.id(of: byteLevel(text))! }

  @Test func mergesApplyInRankOrder() throws {
    let abFirst = try Tokenizer(tinyConfig(words: ["ab", "bc"], merges: [("a", "b"), ("b", "c")]))
    #expect(abFirst.encode("abc") == [id(abFirst, "ab"), id(abFirst, "c")])
    let bcFirst = try Tokenizer(tinyConfig(words: ["ab", "bc"], merges: [("b", "c"), ("a", "b")]))
    #expect(bcFirst.encode("abc") == [id(bcFirst, "a"), id(bcFirst, "bc")])
  }

  @Test func equalRanksMergeLeftmostFirst() throws {
    let t = try Tokenizer(tinyConfig(words: ["aa"], merges: [("a", "a")]))
    #expect(t.encode("aaa") == [id(t, "aa"), id(t, "a")])
    #expect(t.encode("aaaa") == [id(t, "aa"), id(t, "aa")])
  }

  @Test func mergesChainToLongerTokens() throws {
    let t = try Tokenizer(
      tinyConfig(
        words: [" t", "he", " the", "the"],
        merges: [(" ", "t"), ("h", "e"), (" t", "he"), ("t", "he")]))
    #expect(t.encode(" the") == [id(t, " the")])
    #expect(t.encode("the the") == [id(t, "the"), id(t, " the")])
    #expect(t.encode("tithe") == [id(t, "t"), id(t, "i"), id(t, "the")])
  }

  @Test func everyByteHasItsToken() throws {
    // The byte-level alphabet is a bijection onto printable code points.
    #expect(Set(ByteLevel.scalarForByte).count == 256)
    #expect(ByteLevel.scalarForByte[Int(UInt8(ascii: " "))] == 0x120)  // Ġ
    #expect(ByteLevel.scalarForByte[Int(UInt8(ascii: "\n"))] == 0x10A)  // Ċ
    #expect(ByteLevel.scalarForByte[Int(UInt8(ascii: "a"))] == 0x61)
    for byte in 0..<256 {
      #expect(ByteLevel.byteForScalar[Int(ByteLevel.scalarForByte[byte])] == Int16(byte))
    }
    // Each of the 256 byte tokens renders to its byte; text with no merges falls back to one
    // token per UTF-8 byte.
    let t = try Tokenizer(tinyConfig(words: ["zz"], merges: [("z", "z")]))
    for byte in 0..<256 { #expect(t.bytes(of: Int32(byte)) == [UInt8(byte)]) }
    let text = "\u{0}\u{1}\t\n\r \u{7F}~é€🦙\u{10FFFD}\u{A0}\u{AD}"
    let ids = t.encode(text)
    #expect(ids == text.utf8.map { Int32($0) })
    #expect(t.decode(ids) == text)
  }

  @Test func specialTokensArePartitionedOutFirst() throws {
    let t = try Tokenizer(
      tinyConfig(
        specials: [("<|im_start|>", 3), ("<|im_end|>", 3), ("<tool>", 4)], words: ["hi"],
        merges: [("h", "i")]))
    let (start, end, tool) = (Int32(0), Int32(1), Int32(2))
    let text = "<|im_start|>hi<tool>hi<|im_end|>"
    #expect(t.encode(text) == [start, id(t, "hi"), tool, id(t, "hi"), end])
    // Without parseSpecial, control tokens are plain text; user-defined ones still count.
    let plain = t.encode(text, parseSpecial: false)
    #expect(plain.first == id(t, "<"))
    #expect(plain.contains(tool))
    #expect(!plain.contains(start) && !plain.contains(end))
    #expect(t.decode(plain, special: true) == text)
    // A partial marker is text.
    #expect(!t.encode("<|im_start").contains(start))
  }

  @Test func longerSpecialTokensWinOverlaps() throws {
    let t = try Tokenizer(
      tinyConfig(specials: [("<x>", 3), ("<x><y>", 3), ("<y>", 3)], merges: [("a", "b")]))
    let (x, xy, y) = (Int32(0), Int32(1), Int32(2))
    #expect(t.encode("<x><y><x>") == [xy, x])
    #expect(t.encode("<y><x><y>a") == [y, xy, id(t, "a")])
    #expect(t.encode("<x<x>>") == [id(t, "<"), id(t, "x"), x, id(t, ">")])
  }

  @Test func addSpecialAddsBOSAndEOSAsTheModelAsks() throws {
    let config = tinyConfig(
      specials: [("<s>", 3), ("</s>", 3)], merges: [("a", "b")], bosID: 0, eosID: 1,
      addBOS: true, addEOS: true)
    let t = try Tokenizer(config)
    #expect(t.encode("a") == [0, id(t, "a"), 1])
    #expect(t.encode("a", addSpecial: false) == [id(t, "a")])
    #expect(t.encode("") == [0, 1])
    #expect(t.bosID == 0 && t.eosID == 1)
  }

  @Test func decodeShowsControlTokensOnlyWhenAsked() throws {
    let t = try Tokenizer(
      tinyConfig(
        specials: [("<|im_start|>", 3), ("<|im_end|>", 3), ("<tool>", 4)],
        merges: [("h", "i")]))
    let ids = t.encode("<|im_start|>hi <tool><|im_end|>")
    #expect(t.decode(ids) == "hi <tool>")
    #expect(t.decode(ids, special: true) == "<|im_start|>hi <tool><|im_end|>")
    #expect(t.bytes(of: 0).isEmpty)
    #expect(t.bytes(of: 0, special: true) == Array("<|im_start|>".utf8))
    #expect(t.bytes(of: -1).isEmpty && t.bytes(of: 100_000).isEmpty)
  }

  @Test func endOfGenerationFollowsLlamaCpp() throws {
    let t = try Tokenizer(
      tinyConfig(
        specials: [
          ("<|endoftext|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3), ("<reponame>", 3),
          ("<stop>", 3),
        ],
        merges: [("a", "b")], eosID: 4))
    #expect(t.isEndOfGeneration(0))  // <|endoftext|>, by text
    #expect(!t.isEndOfGeneration(1))  // <|im_start|>
    #expect(t.isEndOfGeneration(2))  // <|im_end|>, by text
    #expect(t.isEndOfGeneration(3))  // <reponame>: llama.cpp's FIM repo marker ends generation
    #expect(t.isEndOfGeneration(4))  // the model's EOS
    #expect(!t.isEndOfGeneration(t.id(of: "a")!))
  }

  @Test func idAndTextAreTheVocabularyStrings() throws {
    let t = try Tokenizer(
      tinyConfig(specials: [("<|im_end|>", 3)], words: [" the"], merges: [(" ", "the")]))
    #expect(t.vocabSize == 1 + 256 + 1)
    #expect(t.id(of: "Ġthe") == 257)
    #expect(t.text(of: 257) == "Ġthe")
    #expect(t.id(of: "<|im_end|>") == 0)
    #expect(t.id(of: "nope") == nil)
    #expect(t.text(of: -3) == "")
  }

  @Test func llama3TakesWholeWordsAndCleansSpaces() throws {
    // " world" is in the vocabulary but no merge builds it: Llama 3 (ignore_merges) takes it
    // whole, Qwen 2 merges what it can.
    let words = [" w", " world"]
    let merges = [(" ", "w")]
    let llama = try Tokenizer(tinyConfig(pre: "llama-bpe", words: words, merges: merges))
    #expect(llama.encode(" world") == [id(llama, " world")])
    let qwen = try Tokenizer(tinyConfig(pre: "qwen2", words: words, merges: merges))
    #expect(qwen.encode(" world") == [" w", "o", "r", "l", "d"].map { id(qwen, $0) })
    // Llama 3 detokenizes with Hugging Face's clean-up of spaces; the others do not.
    let text = "a , b . c 's d ' e"
    #expect(llama.decode(llama.encode(text)) == "a, b. c's d'e")
    #expect(qwen.decode(qwen.encode(text)) == text)
  }

  @Test func streamingDecoderHoldsBackSplitCharacters() throws {
    let t = try Tokenizer(tinyConfig(merges: [("a", "b")]))
    var d = StreamingDecoder(tokenizer: t)
    // 🦙 is F0 9F A6 99: one byte token each.
    let llama = Array("🦙".utf8).map { Int32($0) }
    #expect(llama.map { d.push($0) } == ["", "", "", "🦙"])
    #expect(d.push(Int32(UInt8(ascii: "!"))) == "!")
    // é (C3 A9) then x: the lead byte waits for its continuation.
    #expect(d.push(0xC3) == "")
    #expect(d.push(0xA9) == "é")
    #expect(d.flush() == "")
  }

  @Test func streamingDecoderGivesUpOnBytesThatCannotComplete() throws {
    let t = try Tokenizer(tinyConfig(merges: [("a", "b")]))
    var d = StreamingDecoder(tokenizer: t)
    #expect(d.push(0x80) == "\u{FFFD}")  // a continuation byte with no lead
    #expect(d.push(0xE0) == "")
    #expect(d.push(0x80) == "\u{FFFD}\u{FFFD}")  // E0 80 is never valid
    #expect(d.push(0xF0) == "")
    #expect(d.push(0x9F) == "")
    #expect(d.flush() == "\u{FFFD}")  // unfinished at the end
    #expect(d.push(Int32(UInt8(ascii: "z"))) == "z")
  }

  @Test func unknownTokenizerModelsAreRefusedByName() {
    for name in ["llama", "bert", "t5", "rwkv", "plamo2", "none"] {
      var config = tinyConfig(merges: [("a", "b")])
      config.model = name
      let error = #expect(throws: TokenizerError.self) { try Tokenizer(config) }
      guard case .unsupportedModel(let named) = error else {
        Issue.record("\(name): expected unsupportedModel, got \(String(describing: error))")
        continue
      }
      #expect(named == name)
      #expect("\(error!)".contains("'\(name)'"))
    }
    for pre in ["default", "gpt-2", ""] {
      let error = #expect(throws: TokenizerError.self) {
        try Tokenizer(tinyConfig(pre: pre, merges: [("a", "b")]))
      }
      guard case .unsupportedPreTokenizer(let named) = error else {
        Issue.record("\(pre): expected unsupportedPreTokenizer, got \(String(describing: error))")
        continue
      }
      #expect(named == pre)
      #expect("\(error!)".contains("smollm"))
    }
  }

  @Test func inconsistentVocabulariesAreRefused() {
    func refused(_ config: TokenizerConfig) -> Bool {
      do {
        _ = try Tokenizer(config)
        return false
      } catch TokenizerError.invalidVocabulary {
        return true
      } catch {
        return false
      }
    }
    #expect(refused(tinyConfig(words: ["a"], merges: [("a", "b")])))  // "a" twice
    #expect(refused(tinyConfig(merges: [])))
    #expect(refused(tinyConfig(merges: [("a", "b")], addBOS: true)))  // no BOS id
    var short = tinyConfig(merges: [("a", "b")])
    short.tokenTypes.removeLast()
    #expect(refused(short))
  }
}
