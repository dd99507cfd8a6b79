/// Why a tokenizer could not be built from a model's vocabulary.
public enum TokenizerError: Error, CustomStringConvertible {
  /// `tokenizer.ggml.model` names a tokenizer lorad does not implement (it runs byte-level BPE,
  /// `gpt2`, only).
  case unsupportedModel(String)
  /// `tokenizer.ggml.pre` names a pre-tokenizer lorad does not implement.
  case unsupportedPreTokenizer(String)
  /// The vocabulary is inconsistent (duplicate tokens, arrays of different lengths, a required
  /// special token missing…); the message says what and where.
  case invalidVocabulary(String)

  public var description: String {
    switch self {
    case .unsupportedModel(let name):
      let kind: String
      switch name {
      case "llama": kind = " (SentencePiece)"
      case "bert": kind = " (WordPiece)"
      case "t5": kind = " (Unigram)"
      case "rwkv": kind = " (RWKV trie)"
      case "no_vocab", "none": kind = " (the model ships no vocabulary)"
      case "": kind = " (tokenizer.ggml.model is missing)"
      default: kind = ""
      }
      return "tokenizer model '\(name)'\(kind) is not supported: lorad runs byte-level BPE "
        + "vocabularies (tokenizer.ggml.model = gpt2) only; use a model converted with a gpt2 tokenizer"
    case .unsupportedPreTokenizer(let name):
      let shown = name.isEmpty ? "'' (tokenizer.ggml.pre is missing)" : "'\(name)'"
      return "pre-tokenizer \(shown) is not supported: lorad knows "
        + PreTokenizer.supportedNames.joined(separator: ", ")
        + "; reconvert the model with a current llama.cpp or pick a model that uses one of these"
    case .invalidVocabulary(let message):
      return "invalid tokenizer vocabulary: \(message)"
    }
  }
}
