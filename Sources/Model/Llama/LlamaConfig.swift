/// Hyper-parameters of a Llama-family model, read from the GGUF metadata
/// (`{arch}.block_count` and so on, as llama.cpp names them).
public struct LlamaConfig: Sendable, Equatable {
  public enum RopeStyle: Sendable { case normal, neox }

  public var architecture: String
  public var layers: Int
  public var dim: Int  // embedding_length
  public var ffnDim: Int  // feed_forward_length
  public var heads: Int
  public var kvHeads: Int
  public var headDim: Int
  public var ropeDim: Int
  public var ropeBase: Float
  public var ropeStyle: RopeStyle
  public var normEps: Float
  public var contextLength: Int
  public var vocabSize: Int

  public var qDim: Int { heads * headDim }
  public var kvDim: Int { kvHeads * headDim }

  /// Architectures lorad runs: Llama (SmolLM uses it) and Qwen2 (q/k/v biases, NeoX RoPE).
  public static let architectures = ["llama", "qwen2"]

  public init(gguf f: GGUFFile) throws {
    let arch = try f.string("general.architecture")
    guard Self.architectures.contains(arch) else {
      throw ModelError.unsupportedArchitecture(path: f.path, arch: arch)
    }
    architecture = arch
    layers = try f.int("\(arch).block_count")
    dim = try f.int("\(arch).embedding_length")
    ffnDim = try f.int("\(arch).feed_forward_length")
    heads = try f.int("\(arch).attention.head_count")
    kvHeads = (try? f.int("\(arch).attention.head_count_kv")) ?? heads
    guard layers > 0, layers <= 1024, dim > 0, heads > 0, kvHeads > 0, heads % kvHeads == 0, dim % heads == 0,
      ffnDim > 0
    else {
      throw ModelError.badHyperParameters(
        path: f.path,
        reason: "layers \(layers), dim \(dim), heads \(heads), kv heads \(kvHeads), ffn \(ffnDim) do not fit together")
    }
    headDim = (try? f.int("\(arch).attention.key_length")) ?? dim / heads
    ropeDim = (try? f.int("\(arch).rope.dimension_count")) ?? headDim
    guard ropeDim <= headDim, ropeDim % 2 == 0 else {
      throw ModelError.badHyperParameters(
        path: f.path, reason: "rope dimension \(ropeDim) vs head dimension \(headDim)")
    }
    ropeBase = Float((try? f.double("\(arch).rope.freq_base")) ?? 10000)
    ropeStyle = arch == "qwen2" ? .neox : .normal
    normEps = Float((try? f.double("\(arch).attention.layer_norm_rms_epsilon")) ?? 1e-5)
    contextLength = (try? f.int("\(arch).context_length")) ?? 2048
    let emb = try f.require("token_embd.weight")
    guard emb.shape.count == 2, emb.shape[0] == dim else {
      throw GGUFError.wrongTensor(
        path: f.path, tensor: emb.name, reason: "shape \(emb.shape), expected [\(dim), vocab]")
    }
    vocabSize = emb.shape[1]
  }
}
