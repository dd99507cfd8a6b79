import CKernels
import Foundation
import Tensor

/// Runs a `LlamaModel` forward over batches of rows (tokens of one or many sequences).
/// Owns every activation buffer, allocated once for `maxBatch` rows: `forward` allocates
/// nothing. Used only by its compute thread, which also owns the pool.
public final class LlamaContext: @unchecked Sendable {  // owned by one compute thread
  public let model: LlamaModel
  public let config: LlamaConfig
  public let pool: ComputePool
  public let linear: LinearWorkspace
  public let maxBatch: Int
  public let maxContext: Int
  /// Most rows of one step that may ask for logits (the logits buffer is sized for them).
  public let maxLogitRows: Int
  /// What the caches of `makeCache` store.
  public let kvType: KVType

  // Activations, one row per batch row.
  let x: UnsafeMutablePointer<Float>  // (maxBatch, dim) residual stream
  let xb: UnsafeMutablePointer<Float>  // (maxBatch, dim) normed input of a sub-block
  let xb2: UnsafeMutablePointer<Float>  // (maxBatch, dim) output of a sub-block
  let q: UnsafeMutablePointer<Float>  // (maxBatch, qDim)
  let k: UnsafeMutablePointer<Float>  // (maxBatch, kvDim)
  let v: UnsafeMutablePointer<Float>  // (maxBatch, kvDim)
  let att: UnsafeMutablePointer<Float>  // (maxBatch, qDim) attention output
  let hb: UnsafeMutablePointer<Float>  // (maxBatch, ffnDim) gate, then swiglu
  let hb2: UnsafeMutablePointer<Float>  // (maxBatch, ffnDim) up
  let ropeCos: UnsafeMutablePointer<Float>  // (maxBatch, ropeDim/2)
  let ropeSin: UnsafeMutablePointer<Float>  // (maxBatch, ropeDim/2)
  let invFreq: UnsafeMutablePointer<Float>  // (ropeDim/2)
  let scores: UnsafeMutablePointer<Float>  // (threads, maxContext) attention scores per thread
  let gemmScores: UnsafeMutablePointer<Float>  // (threads, gemmAttentionChunk, maxContext) prefill scores
  let gemmKV: UnsafeMutablePointer<Float>  // (threads, 2, maxContext, headDim) an F16 head's keys, values as floats
  // Attention: the step's runs of rows per sequence and where each run's tasks start.
  var attnRuns: [AttentionRun] = []
  var attnTaskStart: [Int] = []
  // LoRA: the step's runs of rows per adapter mix, its tasks, and their scratch (grown on demand).
  var loraRuns: [LoRARun] = []
  var loraTasks: [LoRATask] = []
  var loraGroups: [Int] = []  // where each (run, output) group of loraTasks starts
  var loraXqOffsets: [Int] = []  // per group: where its quantized rows go in loraXq
  var loraCall: LoRACall? = nil  // the call planned by planLoRA, until finishLoRA
  var loraT: UnsafeMutablePointer<Float>? = nil  // (Σ tasks count × rank) intermediates A·x
  var loraTCount = 0
  var loraXq: UnsafeMutableRawPointer? = nil  // x rows in Q8_0 for Q8_0 factors
  var loraXqBytes = 0
  var loraRowRun: [Int] = []  // per batch row: its run in loraRuns, or -1
  var loraRows = 0  // rows of the step
  var loraWritten: [Bool] = []  // per (run, output) of the planned call: has a low-rank sum
  var loraDelta: UnsafeMutablePointer<Float>? = nil  // the call's sums Δ, per output (rows, ldy)
  var loraDeltaCount = 0
  var loraPending: LoRACall? = nil  // finished, its Δ not yet added (applyLoRA)
  var rowScores: UnsafeMutablePointer<Float>? = nil  // (rows, maxContext): attendAlone's scores
  var rowScoresCount = 0
  /// Logits of the rows that asked for them, in batch order: (maxLogitRows, vocab).
  public let logits: UnsafeMutablePointer<Float>

  /// - maxLogitRows: rows per step that may want logits (default: every row, as perplexity
  ///   needs); generation needs one per sequence, which saves vocab × 4 bytes per row.
  /// - kvType: what the KV caches store: exact F32 (the default) or F16 (half the memory and
  ///   the attention reads, as llama.cpp's default).
  public init(
    model: LlamaModel, threads: Int, maxBatch: Int = 512, maxContext: Int = 4096,
    batched: BatchedProduct = .int8, maxLogitRows: Int? = nil, kvType: KVType = .f32
  ) {
    self.kvType = kvType
    self.model = model
    let c = model.config
    config = c
    self.maxBatch = max(1, maxBatch)
    self.maxContext = max(1, maxContext)
    self.maxLogitRows = min(self.maxBatch, max(1, maxLogitRows ?? maxBatch))
    pool = ComputePool(threads: threads)
    let maxCols = max(c.dim, c.ffnDim, c.qDim)
    let biggest = max(c.ffnDim * c.dim, c.qDim * c.dim)
    linear = LinearWorkspace(
      pool: pool, maxRows: self.maxBatch, maxCols: maxCols, maxWeightElements: biggest, batched: batched)
    let B = self.maxBatch
    func buf(_ n: Int) -> UnsafeMutablePointer<Float> {
      let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
      p.initialize(repeating: 0, count: max(n, 1))
      return p
    }
    x = buf(B * c.dim)
    xb = buf(B * c.dim)
    xb2 = buf(B * c.dim)
    q = buf(B * c.qDim)
    k = buf(B * c.kvDim)
    v = buf(B * c.kvDim)
    att = buf(B * c.qDim)
    hb = buf(B * c.ffnDim)
    hb2 = buf(B * c.ffnDim)
    ropeCos = buf(B * c.ropeDim / 2)
    ropeSin = buf(B * c.ropeDim / 2)
    invFreq = buf(c.ropeDim / 2)
    for i in 0..<(c.ropeDim / 2) {
      invFreq[i] = Float(pow(Double(c.ropeBase), -2.0 * Double(i) / Double(c.ropeDim)))
    }
    scores = buf(pool.threads * self.maxContext)
    let gemmRuns = self.maxBatch >= Self.gemmAttentionMinRows
    gemmScores = buf(gemmRuns ? pool.threads * Self.gemmAttentionChunk * self.maxContext : 1)
    gemmKV = buf(gemmRuns && kvType == .f16 ? pool.threads * 2 * self.maxContext * c.headDim : 1)
    logits = buf(self.maxLogitRows * c.vocabSize)
  }

  deinit {
    for p in [x, xb, xb2, q, k, v, att, hb, hb2, ropeCos, ropeSin, invFreq, scores, gemmScores, gemmKV, logits] {
      p.deallocate()
    }
    loraT?.deallocate()
    loraXq?.deallocate()
    loraDelta?.deallocate()
    rowScores?.deallocate()
  }

  /// A KV cache sized for this model.
  public func makeCache(capacity: Int? = nil) -> KVCache {
    KVCache(
      layers: config.layers, capacity: min(capacity ?? maxContext, maxContext), kvDim: config.kvDim, type: kvType)
  }

  /// The logits of the `i`-th row that asked for them (vocab floats).
  public func logits(row i: Int) -> UnsafeMutablePointer<Float> { logits + i * config.vocabSize }

  /// One forward step over every row of `batch`: appends each row's key and value to its
  /// cache, and writes logits for the rows that asked (in batch order, see `logits(row:)`).
  /// Rows beyond `maxBatch` must be split by the caller (see `prefill`).
  public func forward(_ batch: Batch) {
    let n = batch.count
    precondition(n > 0 && n <= maxBatch, "batch of \(n) rows; this context takes 1...\(maxBatch)")
    let c = config
    let w = model.weights
    let dim = c.dim
    for i in 0..<n {
      precondition(batch.positions[i] < batch.caches[i].capacity, "position past the cache")
    }

    // 1. Token embeddings and the RoPE angles of each row.
    let half = c.ropeDim / 2
    batch.tokens.withUnsafeBufferPointer { toks in
      batch.positions.withUnsafeBufferPointer { pos in
        let x = self.x
        let emb = w.tokenEmbedding
        let rc = ropeCos, rs = ropeSin, inv = invFreq
        each(n) { i in
          emb.dequantizeRow(Int(toks[i]), into: x + i * dim)
          let p = Float(pos[i])
          for j in 0..<half {
            let a = p * inv[j]
            rc[i * half + j] = cos(a)
            rs[i * half + j] = sin(a)
          }
        }
      }
    }

    // 2. The transformer blocks; rows with adapters get their low-rank sums added by the step
    //    that next reads each product's rows (applyLoRA), in its pool job.
    collectLoRARuns(batch, n)
    let decodeRows = everyRowAlone(batch, n)
    if decodeRows { Self.grow(&rowScores, &rowScoresCount, to: n * maxContext) }
    for (l, layer) in w.layers.enumerated() {
      // Attention: x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
      let xb = self.xb, x = self.x, xb2 = self.xb2, eps = c.normEps
      let a = linear.activations(xb, ldx: dim, n: n, for: layer.wq) { i in
        if l > 0 {  // the previous block's feed-forward output joins the residual stream
          self.applyLoRA(row: i)
          lk_axpy_f32(x + i * dim, 1, xb2 + i * dim, Int64(dim))
        }
        lk_rmsnorm(xb + i * dim, x + i * dim, layer.attnNorm, Int64(dim), eps)
      }
      loraPending = nil
      var side = planLoRA(
        layer: l, x: xb, ldx: dim, sharing: a, (.q, q, c.qDim), (.k, k, c.kvDim), (.v, v, c.kvDim))
      linear.linear(
        (q, layer.wq), (k, layer.wk), (v, layer.wv), ldy: (c.qDim, c.kvDim, c.kvDim), a, side: side, loraGroup)
      finishLoRA()
      let biases = (layer.bq, layer.bk, layer.bv)
      let ao: Activations
      if decodeRows {  // each row its sequence's only one: rope, store, attention and quantization by row
        ao = batch.positions.withUnsafeBufferPointer { pos in
          batch.caches.withUnsafeBufferPointer { caches in
            linear.activations(att, ldx: c.qDim, n: n, for: layer.wo) { i in
              self.ropeAndStore(layer: l, row: i, position: pos[i], cache: caches[i], biases: biases)
              self.attendAlone(layer: l, row: i, position: pos[i], cache: caches[i])
            }
          }
        }
        loraPending = nil
      } else {
        batch.positions.withUnsafeBufferPointer { pos in
          batch.caches.withUnsafeBufferPointer { caches in
            each(n) { i in self.ropeAndStore(layer: l, row: i, position: pos[i], cache: caches[i], biases: biases) }
          }
        }
        loraPending = nil
        attention(layer: l, batch: batch, n: n)
        ao = linear.activations(att, ldx: c.qDim, n: n, for: layer.wo)
      }
      side = planLoRA(layer: l, x: att, ldx: c.qDim, sharing: ao, (.o, xb2, dim))
      linear.linear(xb2, ldy: dim, layer.wo, ao, side: side, loraGroup)
      finishLoRA()

      // Feed-forward: x += Wdown · (silu(Wgate·norm(x)) ⊙ Wup·norm(x))
      let f = linear.activations(xb, ldx: dim, n: n, for: layer.wGate) { i in
        self.applyLoRA(row: i)
        lk_axpy_f32(x + i * dim, 1, xb2 + i * dim, Int64(dim))
        lk_rmsnorm(xb + i * dim, x + i * dim, layer.ffnNorm, Int64(dim), eps)
      }
      loraPending = nil
      side = planLoRA(layer: l, x: xb, ldx: dim, sharing: f, (.gate, hb, c.ffnDim), (.up, hb2, c.ffnDim))
      linear.linear((hb, layer.wGate), (hb2, layer.wUp), ldy: (c.ffnDim, c.ffnDim, 0), f, side: side, loraGroup)
      finishLoRA()
      let hb = self.hb, hb2 = self.hb2, ffn = c.ffnDim
      let d = linear.activations(hb, ldx: ffn, n: n, for: layer.wDown) { i in
        self.applyLoRA(row: i)
        lk_swiglu(hb + i * ffn, hb + i * ffn, hb2 + i * ffn, Int64(ffn))
      }
      loraPending = nil
      side = planLoRA(layer: l, x: hb, ldx: c.ffnDim, sharing: d, (.down, xb2, dim))
      linear.linear(xb2, ldy: dim, layer.wDown, d, side: side, loraGroup)
      finishLoRA()
    }

    // 3. The last block's output joins the residual stream of the rows that want logits; their
    //    final norm and the output head.
    var m = 0
    for i in 0..<n where batch.wantsLogits[i] {
      precondition(m < maxLogitRows, "more rows want logits than maxLogitRows (\(maxLogitRows))")
      applyLoRA(row: i)
      lk_axpy_f32(x + i * dim, 1, xb2 + i * dim, Int64(dim))
      lk_rmsnorm(xb + m * dim, x + i * dim, w.outputNorm, Int64(dim), c.normEps)
      m += 1
    }
    loraPending = nil
    if m > 0 {
      linear.linear(logits, ldy: c.vocabSize, w.output, x: xb, ldx: dim, n: m)
    }

    // 4. The caches now hold these positions.
    for i in 0..<n {
      let cache = batch.caches[i]
      cache.count = max(cache.count, batch.positions[i] + 1)
    }
  }

  // MARK: - steps

  /// Runs `body(i)` for i in 0..<n: on the pool when there is enough work, inline otherwise.
  @inline(__always) func each(_ n: Int, _ body: (Int) -> Void) {
    if n < 4 {
      for i in 0..<n { body(i) }
    } else {
      pool.parallelFor(n) { r in for i in r { body(i) } }
    }
  }

  /// Adds to q, k and v of row i its low-rank sums (applyLoRA), then their biases; rotates q and k
  /// by the row's position, then appends k and v to the row's cache.
  func ropeAndStore(
    layer l: Int, row i: Int, position: Int, cache: KVCache,
    biases: (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?)
  ) {
    let c = config
    let half = c.ropeDim / 2
    let hd = c.headDim
    let neox = c.ropeStyle == .neox
    let q = self.q + i * c.qDim, k = self.k + i * c.kvDim, v = self.v + i * c.kvDim
    let cs = ropeCos + i * half, sn = ropeSin + i * half
    func rotate(_ base: UnsafeMutablePointer<Float>, _ heads: Int) {
      for h in 0..<heads {
        let p = base + h * hd
        if neox {
          for j in 0..<half {
            let a = p[j], b = p[j + half]
            p[j] = a * cs[j] - b * sn[j]
            p[j + half] = a * sn[j] + b * cs[j]
          }
        } else {
          for j in 0..<half {
            let a = p[2 * j], b = p[2 * j + 1]
            p[2 * j] = a * cs[j] - b * sn[j]
            p[2 * j + 1] = a * sn[j] + b * cs[j]
          }
        }
      }
    }
    applyLoRA(row: i)
    if let b = biases.0 { lk_axpy_f32(q, 1, b, Int64(c.qDim)) }
    if let b = biases.1 { lk_axpy_f32(k, 1, b, Int64(c.kvDim)) }
    if let b = biases.2 { lk_axpy_f32(v, 1, b, Int64(c.kvDim)) }
    rotate(q, c.heads)
    rotate(k, c.kvHeads)
    cache.store(l, position, key: k, value: v)
  }
}
