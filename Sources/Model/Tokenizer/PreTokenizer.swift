/// Splits text into the words BPE then merges within, as llama.cpp's pre-tokenizer regexes do
/// (`tokenizer.ggml.pre`). The regexes are implemented by hand over Unicode scalars, following
/// the hand-written matchers in llama.cpp's `unicode.cpp` — including where those differ from the
/// regex they stand for — so that ids match llama.cpp's exactly.
///
/// - `smollm` (SmolLM, StarCoder): first every `\p{N}` on its own, then GPT-2's
///   `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
/// - `llama-bpe` (Llama 3): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|`
///   ` ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
/// - `qwen2`: the same with `\p{N}` (one digit per word) for `\p{N}{1,3}`.
struct PreTokenizer: Sendable {
  /// The split rules, and the other per-type switches llama.cpp sets next to them.
  enum Kind: Sendable {
    case smollm, llama3, qwen2

    /// `tokenizer.ggml.pre` values that select each kind. Only names for which llama.cpp takes
    /// exactly the same branch (same regexes and the same flags) are listed.
    static let names: [(String, Kind)] = [
      ("smollm", .smollm),
      ("llama-bpe", .llama3), ("llama3", .llama3), ("llama-v3", .llama3), ("falcon3", .llama3),
      ("falcon-h1", .llama3), ("pixtral", .llama3), ("midm-2.0", .llama3), ("lfm2", .llama3),
      ("jina-v5-nano", .llama3),
      ("qwen2", .qwen2), ("deepseek-r1-qwen", .qwen2), ("kormo", .qwen2), ("f2llmv2", .qwen2),
    ]

    init?(name: String) {
      guard let found = Kind.names.first(where: { $0.0 == name }) else { return nil }
      self = found.1
    }

    /// Whether BOS is prepended when the file does not say (`add_bos`).
    var defaultAddBOS: Bool { self == .llama3 }
    /// Whether a word found whole in the vocabulary skips the merges (`ignore_merges`).
    var ignoresMerges: Bool { self == .llama3 }
    /// Whether detokenizing cleans spaces before punctuation (`clean_spaces`).
    var cleansSpaces: Bool { self == .llama3 }
  }

  static var supportedNames: [String] { Kind.names.map { $0.0 } }

  let kind: Kind

  init(name: String) throws {
    guard let kind = Kind(name: name) else { throw TokenizerError.unsupportedPreTokenizer(name) }
    self.kind = kind
  }

  init(kind: Kind) { self.kind = kind }

  /// Splits `scalars[range]` into words, appending the end index of each word to `ends`. The
  /// words are contiguous and cover the range. `flags[i]` are the flags of `scalars[i]`.
  func split(
    _ scalars: UnsafeBufferPointer<UInt32>, _ flags: UnsafeBufferPointer<CodepointFlags>,
    _ range: Range<Int>, into ends: inout [Int32]
  ) {
    switch kind {
    case .smollm:
      // `\p{N}` isolated first; GPT-2's rules then run on the pieces between numbers, each of
      // which ends where it ends (lookaheads do not see past it).
      var start = range.lowerBound
      for i in range where flags[i].contains(.number) {
        if i > start { splitGPT2(scalars, flags, start..<i, into: &ends) }
        ends.append(Int32(i + 1))
        start = i + 1
      }
      if start < range.upperBound {
        splitGPT2(scalars, flags, start..<range.upperBound, into: &ends)
      }
    case .llama3:
      splitLlama3(scalars, flags, range, maxDigits: 3, into: &ends)
    case .qwen2:
      splitLlama3(scalars, flags, range, maxDigits: 1, into: &ends)
    }
  }

  /// The words of `text` as strings (for tests and debugging).
  func words(_ text: String) -> [String] {
    let scalars = text.unicodeScalars.map(\.value)
    let flags = scalars.map(CodepointFlags.of)
    var ends: [Int32] = []
    scalars.withUnsafeBufferPointer { s in
      flags.withUnsafeBufferPointer { f in split(s, f, 0..<s.count, into: &ends) }
    }
    var words: [String] = []
    var start = 0
    for end in ends.map(Int.init) {
      var word = String.UnicodeScalarView()
      for v in scalars[start..<end] { word.append(Unicode.Scalar(v)!) }
      words.append(String(word))
      start = end
    }
    return words
  }
}
