import Tensor

/// The weights of one transformer block, pointing into the mapped GGUF file.
/// Points into the read-only mapping of the model file, which outlives it.
public struct LlamaLayer: @unchecked Sendable {
  public let attnNorm: UnsafePointer<Float>  // (dim)
  public let wq: WeightMatrix  // (qDim, dim)
  public let wk: WeightMatrix  // (kvDim, dim)
  public let wv: WeightMatrix  // (kvDim, dim)
  public let wo: WeightMatrix  // (dim, qDim)
  public let bq: UnsafePointer<Float>?  // (qDim) Qwen2 only
  public let bk: UnsafePointer<Float>?  // (kvDim)
  public let bv: UnsafePointer<Float>?  // (kvDim)
  public let ffnNorm: UnsafePointer<Float>  // (dim)
  public let wGate: WeightMatrix  // (ffnDim, dim)
  public let wUp: WeightMatrix  // (ffnDim, dim)
  public let wDown: WeightMatrix  // (dim, ffnDim)

  /// The seven matrices in the order `with` takes them.
  var matrices: [WeightMatrix] { [wq, wk, wv, wo, wGate, wUp, wDown] }

  /// This layer with its seven matrices replaced (by their prepacked versions).
  func with(_ m: ArraySlice<WeightMatrix>) -> LlamaLayer {
    let m = Array(m)
    return LlamaLayer(
      attnNorm: attnNorm, wq: m[0], wk: m[1], wv: m[2], wo: m[3], bq: bq, bk: bk, bv: bv, ffnNorm: ffnNorm,
      wGate: m[4], wUp: m[5], wDown: m[6])
  }
}

/// All weights of a Llama-family model, stored as they are in the file (4-bit stays 4-bit).
public struct LlamaWeights: @unchecked Sendable {  // points into the read-only mapping
  public let tokenEmbedding: WeightMatrix  // (vocab, dim)
  public let layers: [LlamaLayer]
  public let outputNorm: UnsafePointer<Float>  // (dim)
  public let output: WeightMatrix  // (vocab, dim): output.weight, or token_embd when tied
  public let tiedOutput: Bool
  /// The prepacked copies of the layers' matrices and the output head (empty without AVX-512).
  public let prepacked: PrepackedWeights

  public init(gguf f: GGUFFile, config c: LlamaConfig) throws {
    func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
      let t = try f.require(name)
      guard t.shape.count == 2, t.shape[0] == cols, t.shape[1] == rows else {
        throw GGUFError.wrongTensor(path: f.path, tensor: name, reason: "shape \(t.shape), expected [\(cols), \(rows)]")
      }
      return WeightMatrix(type: t.type, rows: rows, cols: cols, data: t.data)
    }
    func vector(_ name: String, _ n: Int) throws -> UnsafePointer<Float> {
      let t = try f.require(name)
      guard t.type == .f32, t.elementCount == n else {
        throw GGUFError.wrongTensor(
          path: f.path, tensor: name, reason: "expected \(n) F32 values, found \(t.shape) \(t.type)")
      }
      return t.data.assumingMemoryBound(to: Float.self)
    }
    func optionalVector(_ name: String, _ n: Int) throws -> UnsafePointer<Float>? {
      f.tensor(name) == nil ? nil : try vector(name, n)
    }
    tokenEmbedding = try matrix("token_embd.weight", rows: c.vocabSize, cols: c.dim)
    outputNorm = try vector("output_norm.weight", c.dim)
    let head: WeightMatrix
    if f.tensor("output.weight") != nil {
      head = try matrix("output.weight", rows: c.vocabSize, cols: c.dim)
      tiedOutput = false
    } else {
      head = tokenEmbedding
      tiedOutput = true
    }
    var ls: [LlamaLayer] = []
    for i in 0..<c.layers {
      let p = "blk.\(i)."
      ls.append(
        LlamaLayer(
          attnNorm: try vector(p + "attn_norm.weight", c.dim),
          wq: try matrix(p + "attn_q.weight", rows: c.qDim, cols: c.dim),
          wk: try matrix(p + "attn_k.weight", rows: c.kvDim, cols: c.dim),
          wv: try matrix(p + "attn_v.weight", rows: c.kvDim, cols: c.dim),
          wo: try matrix(p + "attn_output.weight", rows: c.dim, cols: c.qDim),
          bq: try optionalVector(p + "attn_q.bias", c.qDim),
          bk: try optionalVector(p + "attn_k.bias", c.kvDim),
          bv: try optionalVector(p + "attn_v.bias", c.kvDim),
          ffnNorm: try vector(p + "ffn_norm.weight", c.dim),
          wGate: try matrix(p + "ffn_gate.weight", rows: c.ffnDim, cols: c.dim),
          wUp: try matrix(p + "ffn_up.weight", rows: c.ffnDim, cols: c.dim),
          wDown: try matrix(p + "ffn_down.weight", rows: c.dim, cols: c.ffnDim)))
    }
    var all = [head] + ls.flatMap(\.matrices)
    // The products read the prepacked copies, so the file's pages of those matrices leave the
    // process (token_embd's rows come back one page at a time as embedding lookups read them).
    prepacked = PrepackedWeights(all) { i, m in
      all[i] = m
      f.releasePages(m.data, count: m.rows * m.rowBytes)
    }
    output = all[0]
    layers = ls.indices.map { i in ls[i].with(all[1 + 7 * i..<8 + 7 * i]) }
  }
}
