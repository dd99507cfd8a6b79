/// Which tokens end a generation, decided as llama.cpp's vocabulary loader does: by token text
/// (its list of known end-of-turn markers), plus the model's EOS and EOT ids, plus the
/// fill-in-the-middle pad / repo / file-separator tokens it finds by text. Tokens recognised by
/// text become control tokens (they are then cut out of text and hidden when decoding).
enum EndOfGeneration {
  /// Texts of tokens that end a generation wherever they appear in a vocabulary.
  static let texts: [String] = [
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~[",
  ]
  /// Fill-in-the-middle markers llama.cpp finds by text. The pad, repo and file-separator ones
  /// also end a generation.
  static let fimPrefix = [
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
    "<|code_prefix|>", "<|prefix|>",
  ]
  static let fimSuffix = [
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
    "<|code_suffix|>", "<|suffix|>",
  ]
  static let fimMiddle = [
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
    "<|code_middle|>", "<|middle|>",
  ]
  static let fimPad = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]
  static let fimRepo = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]
  static let fimSeparator = ["<|file_sep|>"]
  /// gpt-oss's channel markers are always rendered (user-defined), whatever the file says.
  static let alwaysRendered = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]

  /// Marks the tokens recognised by text in `attributes` and returns the end-of-generation ids.
  static func detect(
    attributes: inout [TokenAttributes], index: TokenTextIndex, vocabCount: Int,
    eosID: Int32?, eotID: Int32?
  ) -> Set<Int32> {
    func id(_ text: String) -> Int32? {
      guard let id = index.find(text), Int(id) < vocabCount else { return nil }
      return id
    }
    var ends = Set<Int32>()
    // Each FIM role is taken by one token (llama.cpp takes whichever its hash map yields
    // first; here, the lowest id); it becomes a control token.
    for (list, endsGeneration) in [
      (fimPrefix, false), (fimSuffix, false), (fimMiddle, false), (fimPad, true), (fimRepo, true),
      (fimSeparator, true),
    ] {
      guard let found = list.compactMap(id).min() else { continue }
      attributes[Int(found)].insert(.control)
      if endsGeneration { ends.insert(found) }
    }
    for text in texts {
      guard let found = id(text) else { continue }
      attributes[Int(found)].insert(.control)
      ends.insert(found)
    }
    for text in alwaysRendered {
      if let found = id(text) { attributes[Int(found)] = .userDefined }
    }
    if let eos = eosID { ends.insert(eos) }
    if let eot = eotID { ends.insert(eot) }

    // gpt-oss (o200k_harmony) and solar-open end turns with <|return|> / <|call|> (or
    // <|calls|> / <|flush|>); their <|end|> is then an ordinary rendered marker.
    func ending(_ text: String) -> Bool { id(text).map { ends.contains($0) } ?? false }
    let hasCall = ending("<|call|>") || ending("<|calls|>")
    if let end = id("<|end|>"), ends.contains(end), hasCall,
      ending("<|return|>") || ending("<|flush|>")
    {
      ends.remove(end)
      attributes[Int(end)] = .userDefined
    }
    // Gemma 4 has an ordinary </s>.
    if let s = id("</s>"), ends.contains(s), ending("<|tool_response>") || ending("<|plamo:eos|>") {
      ends.remove(s)
      attributes[Int(s)] = .normal
    }
    return ends
  }
}
