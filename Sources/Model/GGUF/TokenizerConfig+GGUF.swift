extension TokenizerConfig {
  /// Reads `tokenizer.ggml.*` from a GGUF file. Missing required keys name themselves.
  public init(gguf f: GGUFFile) throws {
    let model = try f.string("tokenizer.ggml.model")
    let pre = (f["tokenizer.ggml.pre"]?.string) ?? "default"
    let tokens = try f.strings("tokenizer.ggml.tokens")
    let types =
      f["tokenizer.ggml.token_type"] == nil
      ? [] : try f.ints("tokenizer.ggml.token_type").map { Int32(truncatingIfNeeded: $0) }
    let merges = f["tokenizer.ggml.merges"] == nil ? [] : try f.strings("tokenizer.ggml.merges")
    if !types.isEmpty && types.count != tokens.count {
      throw GGUFError.wrongKeyType(
        path: f.path, key: "tokenizer.ggml.token_type", expected: "one entry per token (\(tokens.count))")
    }
    func id(_ key: String) -> Int32? {
      guard let v = f[key]?.int, v >= 0, v < tokens.count else { return nil }
      return Int32(v)
    }
    self.init(
      model: model, pre: pre, tokens: tokens, tokenTypes: types, merges: merges,
      bosID: id("tokenizer.ggml.bos_token_id"), eosID: id("tokenizer.ggml.eos_token_id"),
      eotID: id("tokenizer.ggml.eot_token_id"), padID: id("tokenizer.ggml.padding_token_id"),
      addBOS: f["tokenizer.ggml.add_bos_token"]?.bool ?? TokenizerConfig.defaultAddBOS(pre: pre),
      addEOS: f["tokenizer.ggml.add_eos_token"]?.bool ?? false)
  }
}
