/// Everything the tokenizer reads from a model, in the GGUF metadata's own terms
/// (`tokenizer.ggml.*`). Filled from the file by `TokenizerConfig(gguf:)`; built by hand in tests.
public struct TokenizerConfig: Sendable {
  /// `tokenizer.ggml.model`: only `gpt2` (byte-level BPE) is supported.
  public var model: String
  /// `tokenizer.ggml.pre`: the pre-tokenizer, e.g. `smollm`, `llama-bpe`, `qwen2`.
  public var pre: String
  /// `tokenizer.ggml.tokens`: the vocabulary, in byte-level form (`Ġthe` for " the").
  public var tokens: [String]
  /// `tokenizer.ggml.token_type`, one per token: 1 normal, 2 unknown, 3 control,
  /// 4 user-defined, 5 unused, 6 byte. Empty means "all normal".
  public var tokenTypes: [Int32]
  /// `tokenizer.ggml.merges`: "left right", the line number is the merge's rank.
  public var merges: [String]
  /// `tokenizer.ggml.{bos,eos,eot,padding}_token_id`.
  public var bosID: Int32?
  public var eosID: Int32?
  public var eotID: Int32?
  public var padID: Int32?
  /// `tokenizer.ggml.add_bos_token` / `add_eos_token`. When the file does not say, use
  /// `TokenizerConfig.defaultAddBOS(pre:)` (llama.cpp's default: true for the Llama-3 family).
  public var addBOS: Bool
  public var addEOS: Bool

  public init(
    model: String, pre: String, tokens: [String], tokenTypes: [Int32] = [], merges: [String],
    bosID: Int32? = nil, eosID: Int32? = nil, eotID: Int32? = nil, padID: Int32? = nil,
    addBOS: Bool = false, addEOS: Bool = false
  ) {
    self.model = model
    self.pre = pre
    self.tokens = tokens
    self.tokenTypes = tokenTypes
    self.merges = merges
    self.bosID = bosID
    self.eosID = eosID
    self.eotID = eotID
    self.padID = padID
    self.addBOS = addBOS
    self.addEOS = addEOS
  }

  /// llama.cpp's value of `add_bos` when `tokenizer.ggml.add_bos_token` is absent: the Llama-3
  /// family prepends BOS, the other byte-level BPE pre-tokenizers do not.
  public static func defaultAddBOS(pre: String) -> Bool {
    PreTokenizer.Kind(name: pre)?.defaultAddBOS ?? false
  }
}
