import Model

/// How the scheduler batches and what it bounds. Defaults suit the default model on 2 cores.
public struct EngineConfiguration: Sendable {
  /// Sequences decoding together at most; more requests wait in the queue.
  public var maxSequences = 16
  /// Requests waiting at most (over all connections); past it a request gets `overloaded`.
  public var maxQueued = 256
  /// Requests one connection may have waiting or running at most, so that one client cannot
  /// fill the whole queue; past it its requests get `overloaded`.
  public var maxPerConnection = 64
  /// A prompt is fed in chunks of this many tokens, each starting at a multiple of it from the
  /// prompt's start — the same chunks `lorad generate` feeds, so a sequence's arithmetic does not
  /// depend on what else runs beside it.
  public var prefillChunk = Generator.defaultPrefillChunk
  /// Prompt tokens fed per step at most (whole chunks; at least one chunk per step), so
  /// running streams keep flowing while new prompts come in.
  public var prefillTokensPerStep = 512
  /// Tokens of one sequence (prompt plus completion) at most: its KV cache's size.
  public var contextLength = 2048
  /// What the sequences' KV caches store (F16: half the memory and the attention's reads).
  public var kvType: KVType = .f32
  /// `max_tokens` when a request gives none.
  public var defaultMaxTokens = 256
  /// Compute threads (the scheduler's own thread included).
  public var threads = 2

  public init() {}

  /// Rows of the largest step: a full prefill allowance plus one decode row per sequence.
  public var maxBatchRows: Int { prefillTokensPerStep + maxSequences }
}
