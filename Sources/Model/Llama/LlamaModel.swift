import Tensor

/// A Llama-family model loaded from a GGUF file: its configuration and weights (in the mapped
/// file, 4-bit stays 4-bit). Immutable; shared by every context that runs it.
public final class LlamaModel: Sendable {
  public let file: GGUFFile
  public let config: LlamaConfig
  public let weights: LlamaWeights

  public convenience init(path: String) throws {
    try self.init(file: try GGUFFile(path: path))
  }

  public init(file f: GGUFFile) throws {
    file = f
    config = try LlamaConfig(gguf: f)
    weights = try LlamaWeights(gguf: f, config: config)
  }

  /// Bytes of weight data the model maps.
  public var weightBytes: Int { file.tensors.reduce(0) { $0 + $1.byteCount } }
}

/// The rows of one forward step: each row is one token of one sequence at one position.
/// Rows of the same sequence must come in position order. Reused between steps (its arrays
/// keep their capacity), so building a batch allocates nothing after the first steps.
public final class Batch: @unchecked Sendable {  // owned by the compute thread
  public private(set) var tokens: [Int32] = []
  public private(set) var positions: [Int] = []
  public private(set) var caches: [KVCache] = []
  public private(set) var wantsLogits: [Bool] = []
  /// The adapters each row applies (nil: the base model alone).
  public private(set) var adapters: [AdapterMix?] = []

  public init(capacity: Int = 512) {
    tokens.reserveCapacity(capacity)
    positions.reserveCapacity(capacity)
    caches.reserveCapacity(capacity)
    wantsLogits.reserveCapacity(capacity)
    adapters.reserveCapacity(capacity)
  }

  public var count: Int { tokens.count }

  public func add(_ token: Int32, position: Int, cache: KVCache, logits: Bool, adapters mix: AdapterMix? = nil) {
    tokens.append(token)
    positions.append(position)
    caches.append(cache)
    wantsLogits.append(logits)
    adapters.append(mix)
  }

  public func clear() {
    tokens.removeAll(keepingCapacity: true)
    positions.removeAll(keepingCapacity: true)
    caches.removeAll(keepingCapacity: true)
    wantsLogits.removeAll(keepingCapacity: true)
    adapters.removeAll(keepingCapacity: true)
  }
}
