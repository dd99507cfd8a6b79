/// What kind of token an id is, as llama.cpp's `llama_token_attr`: from the GGUF token type,
/// plus `control` for tokens llama.cpp recognises by their text (end-of-turn, FIM markers).
struct TokenAttributes: OptionSet, Sendable {
  let rawValue: UInt8

  static let unknown = TokenAttributes(rawValue: 1 << 0)
  static let unused = TokenAttributes(rawValue: 1 << 1)
  static let normal = TokenAttributes(rawValue: 1 << 2)
  static let control = TokenAttributes(rawValue: 1 << 3)
  static let userDefined = TokenAttributes(rawValue: 1 << 4)
  static let byte = TokenAttributes(rawValue: 1 << 5)

  /// From `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined,
  /// 5 unused, 6 byte; anything else is undefined (no attribute).
  init(type: Int32) {
    switch type {
    case 1: self = .normal
    case 2: self = .unknown
    case 3: self = .control
    case 4: self = .userDefined
    case 5: self = .unused
    case 6: self = .byte
    default: self = []
    }
  }

  init(rawValue: UInt8) { self.rawValue = rawValue }

  /// Partitioned out of the text before BPE (llama.cpp's special-token cache).
  var isSpecial: Bool { !isDisjoint(with: [.control, .userDefined, .unknown]) }
  /// Rendered only when the caller asks for special tokens.
  var isHiddenUnlessSpecial: Bool { !isDisjoint(with: [.control, .unknown]) }
}
