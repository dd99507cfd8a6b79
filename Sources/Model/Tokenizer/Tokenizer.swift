/// A byte-level BPE tokenizer that gives the same ids as llama.cpp's `llama_tokenize` for GGUF
/// models with `tokenizer.ggml.model = gpt2` and one of the pre-tokenizers `PreTokenizer` knows.
///
/// Encoding runs in stages, one file each: special tokens are cut out of the text
/// (`SpecialTokens`), the rest is split into words (`PreTokenizer`), and each word's bytes are
/// merged (`BytePairEncoder`, over the byte-level alphabet of `ByteLevel`).
///
/// Immutable after `init`; every method may be called from any thread at once.
public final class Tokenizer: Sendable {
  public let vocabSize: Int
  public let bosID: Int32?
  public let eosID: Int32?

  let preTokenizer: PreTokenizer
  let addBOS: Bool
  let addEOS: Bool
  /// The vocabulary strings (an empty one is shown as `[EMPTY_<id>]`, as llama.cpp does).
  let tokens: [String]  // (vocabSize)
  let attributes: [TokenAttributes]  // (vocabSize)
  let index: TokenTextIndex
  let encoder: BytePairEncoder
  let specialTokens: SpecialTokens
  let endOfGeneration: Set<Int32>
  /// What each token renders to when special tokens are shown: `pieces[pieceStarts[id] ..<
  /// pieceStarts[id + 1]]`.
  let pieces: [UInt8]  // (total bytes)
  let pieceStarts: [Int32]  // (vocabSize + 1)

  public init(_ config: TokenizerConfig) throws {
    guard config.model == "gpt2" else { throw TokenizerError.unsupportedModel(config.model) }
    preTokenizer = try PreTokenizer(name: config.pre)
    let n = config.tokens.count
    guard n > 0 else { throw TokenizerError.invalidVocabulary("tokenizer.ggml.tokens is empty") }
    guard n < Int(Int32.max) / 2 else {
      throw TokenizerError.invalidVocabulary("\(n) tokens is more than lorad's ids can hold")
    }
    guard config.tokenTypes.isEmpty || config.tokenTypes.count >= n else {
      throw TokenizerError.invalidVocabulary(
        "tokenizer.ggml.token_type has \(config.tokenTypes.count) entries for \(n) tokens")
    }
    guard !config.merges.isEmpty else {
      throw TokenizerError.invalidVocabulary(
        "tokenizer.ggml.merges is missing or empty; a gpt2 (BPE) vocabulary needs its merges")
    }
    vocabSize = n

    // Token texts, interned so that id == token id.
    var tokens = config.tokens
    var index = TokenTextIndex(expectedCount: n + 256)
    var batch: [UInt8] = []
    var ends: [Int32] = []
    var interned: [(id: Int32, inserted: Bool)] = []
    for batchStart in stride(from: 0, to: n, by: 256) {
      batch.removeAll(keepingCapacity: true)
      ends.removeAll(keepingCapacity: true)
      for id in batchStart..<min(batchStart + 256, n) {
        if tokens[id].isEmpty { tokens[id] = "[EMPTY_\(id)]" }
        batch.append(contentsOf: tokens[id].utf8)
        ends.append(Int32(batch.count))
      }
      batch.withUnsafeBufferPointer { b in
        ends.withUnsafeBufferPointer { e in index.intern(batch: b, ends: e, into: &interned) }
      }
    }
    if let id = interned.firstIndex(where: { !$0.inserted }) {
      throw TokenizerError.invalidVocabulary(
        "token \(id) '\(tokens[id])' repeats token \(interned[id].id); every token text must be unique"
      )
    }
    self.tokens = tokens
    encoder = BytePairEncoder(merges: config.merges, index: &index, vocabCount: n)
    self.index = index

    // Special ids: an id out of range is ignored (llama.cpp warns and drops it).
    func valid(_ id: Int32?) -> Int32? { id.flatMap { $0 >= 0 && Int($0) < n ? $0 : nil } }
    bosID = valid(config.bosID)
    eosID = valid(config.eosID)
    addBOS = config.addBOS
    addEOS = config.addEOS
    if addBOS && bosID == nil {
      throw TokenizerError.invalidVocabulary(
        "add_bos_token is set but bos_token_id is missing or out of range (\(config.bosID.map(String.init) ?? "none"))"
      )
    }
    if addEOS && eosID == nil {
      throw TokenizerError.invalidVocabulary(
        "add_eos_token is set but eos_token_id is missing or out of range (\(config.eosID.map(String.init) ?? "none"))"
      )
    }

    var attributes =
      config.tokenTypes.isEmpty
      ? [TokenAttributes](repeating: .normal, count: n)
      : config.tokenTypes.prefix(n).map(TokenAttributes.init(type:))
    endOfGeneration = EndOfGeneration.detect(
      attributes: &attributes, index: index, vocabCount: n, eosID: eosID, eotID: valid(config.eotID)
    )
    self.attributes = attributes

    specialTokens = SpecialTokens(
      (0..<n).compactMap { id in
        let a = attributes[id]
        guard a.isSpecial else { return nil }
        return (Int32(id), tokens[id], !a.isHiddenUnlessSpecial)
      })

    var pieces: [UInt8] = []
    var pieceStarts: [Int32] = [0]
    pieces.reserveCapacity(index.bytes.count)
    pieceStarts.reserveCapacity(n + 1)
    for id in 0..<n {
      Self.render(tokens[id], attributes[id], into: &pieces)
      pieceStarts.append(Int32(pieces.count))
    }
    self.pieces = pieces
    self.pieceStarts = pieceStarts
  }

  /// A token's text as llama.cpp's `token_to_piece` renders it with special tokens shown.
  private static func render(_ text: String, _ a: TokenAttributes, into out: inout [UInt8]) {
    if !a.isDisjoint(with: [.unknown, .control, .userDefined]) {
      out.append(contentsOf: text.utf8)
    } else if a.contains(.normal) {
      ByteLevel.decode(text, into: &out)
    } else if a.contains(.byte) {
      // "<0xAB>": the two hex digits after "<0x", read as far as they are hex.
      var value: UInt8 = 0
      for unit in text.utf8.dropFirst(3).prefix(2) {
        guard let digit = Int(String(UnicodeScalar(unit)), radix: 16) else { break }
        value = value << 4 | UInt8(digit)
      }
      out.append(value)
    }
    // Unused and undefined tokens render to nothing.
  }

  // MARK: - Encoding

  /// Scratch buffers of one `encode` call, reused across its fragments and words.
  private struct Scratch {
    var scalars: [UInt32] = []  // (fragment scalars)
    var flags: [CodepointFlags] = []  // (fragment scalars)
    var offsets: [Int32] = []  // (fragment scalars + 1) byte offset of each scalar
    var ends: [Int32] = []  // (words) end scalar index of each word
    var fragments: [SpecialTokens.Fragment] = []
    var bpe = BytePairEncoder.Workspace()
  }

  /// llama.cpp's `llama_tokenize(text, add_special, parse_special)`: `addSpecial` adds BOS / EOS
  /// as the model asks (`add_bos_token`, `add_eos_token`); `parseSpecial` lets control tokens
  /// written in the text (`<|im_start|>`) become their ids rather than plain text.
  public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = true) -> [Int32] {
    var out: [Int32] = []
    out.reserveCapacity(text.utf8.count / 3 + 2)
    if addSpecial && addBOS, let bos = bosID { out.append(bos) }
    var text = text
    text.withUTF8 { bytes in
      var s = Scratch()
      specialTokens.partition(bytes, parseSpecial: parseSpecial, into: &s.fragments)
      for fragment in s.fragments {
        switch fragment {
        case .token(let id): out.append(id)
        case .text(let range): encodeText(UnsafeBufferPointer(rebasing: bytes[range]), &s, &out)
        }
      }
    }
    if addSpecial && addEOS, let eos = eosID { out.append(eos) }
    return out
  }

  /// Pre-tokenizes ordinary text (valid UTF-8) and byte-pair encodes each word.
  private func encodeText(
    _ bytes: UnsafeBufferPointer<UInt8>, _ s: inout Scratch, _ out: inout [Int32]
  ) {
    s.scalars.removeAll(keepingCapacity: true)
    s.flags.removeAll(keepingCapacity: true)
    s.offsets.removeAll(keepingCapacity: true)
    s.ends.removeAll(keepingCapacity: true)
    var i = 0
    let n = bytes.count
    while i < n {
      let b0 = UInt32(bytes[i])
      var value: UInt32
      var length: Int
      if b0 < 0x80 {
        (value, length) = (b0, 1)
      } else if b0 < 0xE0 {
        (value, length) = ((b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F), 2)
      } else if b0 < 0xF0 {
        value = (b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F)
        length = 3
      } else {
        value = (b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12
        value |= UInt32(bytes[i + 2] & 0x3F) << 6 | UInt32(bytes[i + 3] & 0x3F)
        length = 4
      }
      s.scalars.append(value)
      s.flags.append(CodepointFlags.of(value))
      s.offsets.append(Int32(i))
      i += length
    }
    s.offsets.append(Int32(n))
    s.scalars.withUnsafeBufferPointer { scalars in
      s.flags.withUnsafeBufferPointer { flags in
        preTokenizer.split(scalars, flags, 0..<scalars.count, into: &s.ends)
      }
    }
    let wholeWords = preTokenizer.kind.ignoresMerges
    var start = 0
    for end in s.ends {
      let from = Int(s.offsets[start])
      let to = Int(s.offsets[Int(end)])
      encoder.encode(
        UnsafeBufferPointer(rebasing: bytes[from..<to]), wholeWords: wholeWords, &s.bpe, into: &out)
      start = Int(end)
    }
  }

  // MARK: - Decoding

  /// The raw bytes a token stands for (byte-level decoded); control and unknown tokens give
  /// their text only if `special` is true. An id outside the vocabulary gives nothing.
  public func bytes(of id: Int32, special: Bool = false) -> [UInt8] {
    var out: [UInt8] = []
    appendBytes(of: id, special: special, to: &out)
    return out
  }

  func appendBytes(of id: Int32, special: Bool, to out: inout [UInt8]) {
    guard id >= 0, Int(id) < vocabSize else { return }
    if !special && attributes[Int(id)].isHiddenUnlessSpecial { return }
    out.append(contentsOf: pieces[Int(pieceStarts[Int(id)])..<Int(pieceStarts[Int(id) + 1])])
  }

  /// llama.cpp's `llama_detokenize(ids, remove_special: false, unparse_special: special)`:
  /// the tokens' bytes, with Llama 3's clean-up of spaces before punctuation, as UTF-8 (an
  /// invalid sequence becomes U+FFFD).
  public func decode(_ ids: [Int32], special: Bool = false) -> String {
    var out: [UInt8] = []
    for id in ids { appendBytes(of: id, special: special, to: &out) }
    if preTokenizer.kind.cleansSpaces { Self.cleanSpaces(&out) }
    return String(decoding: out, as: UTF8.self)
  }

  /// End of generation: EOS, EOT, and the end-of-turn control tokens llama.cpp's
  /// `llama_vocab_is_eog` recognises (`<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`, …).
  public func isEndOfGeneration(_ id: Int32) -> Bool { endOfGeneration.contains(id) }

  /// The id of a vocabulary string (in byte-level form: `Ġthe`), if it is one.
  public func id(of token: String) -> Int32? {
    guard let id = index.find(token), Int(id) < vocabSize else { return nil }
    return id
  }

  /// The vocabulary string of `id` (byte-level form); empty for an id outside the vocabulary.
  public func text(of id: Int32) -> String {
    guard id >= 0, Int(id) < vocabSize else { return "" }
    return tokens[Int(id)]
  }
}
