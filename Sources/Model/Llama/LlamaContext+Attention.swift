import CKernels
import Foundation
import Tensor

/// A maximal run of consecutive batch rows of one sequence at consecutive positions.
struct AttentionRun {
  var row: Int
  var count: Int
  var cache: KVCache
  var position: Int  // of the first row
}

extension LlamaContext {
  /// Rows from which a run's attention uses GEMMs instead of the per-row kernel.
  static let gemmAttentionMinRows = 8
  /// Query rows per GEMM task: bounds the score scratch and the causal waste.
  static let gemmAttentionChunk = 64

  /// att[i, head h] = softmax(q[i,h] · K[0...pos_i]ᵀ / √hd) · V[0...pos_i], with the keys and
  /// values of row i's own sequence (GQA: head h reads kv head h / (heads / kvHeads)).
  /// Long runs of one sequence (prefill) go through two sgemm per (head, chunk of 64 rows);
  /// single rows (decode) through one C kernel per (row, head), a task being a row's heads
  /// that share one kv head. All tasks of a step share one
  /// pool job, round-robin over the threads; each thread has its own score scratch.
  func attention(layer l: Int, batch: Batch, n: Int) {
    collectAttentionRuns(batch, n)
    let c = config
    let hd = c.headDim, heads = c.heads, kvHeads = c.kvHeads, group = heads / kvHeads
    let qDim = c.qDim, kvDim = c.kvDim
    let scale = 1 / Float(hd).squareRoot()
    let chunk = Self.gemmAttentionChunk
    // Task list: per run, either heads × chunks GEMM tasks or heads × rows kernel tasks.
    attnTaskStart.removeAll(keepingCapacity: true)
    var total = 0
    for r in attnRuns {
      attnTaskStart.append(total)
      total += r.count >= Self.gemmAttentionMinRows ? heads * ((r.count + chunk - 1) / chunk) : kvHeads * r.count
    }
    let runs = attnRuns, starts = attnTaskStart
    let q = self.q, att = self.att, scores = self.scores, maxCtx = maxContext
    let gemm = gemmScores, perThread = chunk * maxContext
    let kvf = gemmKV, kvPerThread = 2 * maxContext * hd
    let body: (Int, Int) -> Void = { ith, nth in
      var run = 0
      var t = ith
      while t < total {
        while run + 1 < runs.count && starts[run + 1] <= t { run += 1 }
        let r = runs[run]
        let local = t - starts[run]
        t += nth
        if r.count >= Self.gemmAttentionMinRows {
          // GEMM task: head h, rows [r0, r1) of the run.
          let h = local % heads, ci = local / heads
          let r0 = ci * chunk, r1 = min(r.count, r0 + chunk)
          let rows = r1 - r0
          let len = r.position + r1  // keys 0..<len cover every row of the chunk
          let kvOff = (h / group) * hd
          let s = gemm + ith * perThread
          // The head's keys and values as floats: in place (F32), or converted (F16).
          let k0: UnsafePointer<Float>, v0: UnsafePointer<Float>, ldkv: Int
          if r.cache.type == .f32 {
            k0 = UnsafePointer(r.cache.key(l, 0).assumingMemoryBound(to: Float.self) + kvOff)
            v0 = UnsafePointer(r.cache.value(l, 0).assumingMemoryBound(to: Float.self) + kvOff)
            ldkv = kvDim
          } else {
            let kf = kvf + ith * kvPerThread, vf = kf + maxCtx * hd
            let kh = r.cache.key(l, 0).assumingMemoryBound(to: UInt16.self) + kvOff
            let vh = r.cache.value(l, 0).assumingMemoryBound(to: UInt16.self) + kvOff
            for j in 0..<len {
              lk_dequantize_row(GGMLType.f16.code, kh + j * kvDim, kf + j * hd, Int64(hd))
              lk_dequantize_row(GGMLType.f16.code, vh + j * kvDim, vf + j * hd, Int64(hd))
            }
            k0 = UnsafePointer(kf)
            v0 = UnsafePointer(vf)
            ldkv = hd
          }
          let qrow = q + (r.row + r0) * qDim + h * hd
          BLAS.gemmNT(m: rows, n: len, k: hd, alpha: scale, a: qrow, lda: qDim, b: k0, ldb: ldkv, c: s, ldc: len)
          for i in 0..<rows {
            let row = s + i * len
            let valid = r.position + r0 + i + 1
            var mx = -Float.infinity
            for j in 0..<valid where row[j] > mx { mx = row[j] }
            var sum: Float = 0
            for j in 0..<valid {
              let e = expf(row[j] - mx)
              row[j] = e
              sum += e
            }
            let inv = 1 / sum
            for j in 0..<valid { row[j] *= inv }
            if valid < len { (row + valid).update(repeating: 0, count: len - valid) }
          }
          BLAS.gemmNN(
            m: rows, n: hd, k: len, a: s, lda: len, b: v0, ldb: ldkv, c: att + (r.row + r0) * qDim + h * hd, ldc: qDim)
        } else {
          // Kernel task: one row, the query heads of one KV head, one after another on this
          // thread, so that head's keys and values come from memory once, then from its caches.
          let i = local / kvHeads, g = local % kvHeads
          let row = r.row + i
          let kvOff = g * hd
          let len = Int64(r.position + i + 1)
          for h in g * group..<(g + 1) * group {
            let out = att + row * qDim + h * hd, qh = q + row * qDim + h * hd, sc = scores + ith * maxCtx
            if r.cache.type == .f32 {
              lk_attention_head(
                out, qh, r.cache.key(l, 0).assumingMemoryBound(to: Float.self) + kvOff,
                r.cache.value(l, 0).assumingMemoryBound(to: Float.self) + kvOff, Int64(kvDim), len, Int64(hd), scale, sc
              )
            } else {
              lk_attention_head_f16(
                out, qh, r.cache.key(l, 0).assumingMemoryBound(to: UInt16.self) + kvOff,
                r.cache.value(l, 0).assumingMemoryBound(to: UInt16.self) + kvOff, Int64(kvDim), len, Int64(hd), scale,
                sc)
            }
          }
        }
      }
    }
    if pool.threads == 1 || total < 2 {
      body(0, 1)
    } else {
      pool.run(body)
    }
  }

  /// True when no two rows of the batch share a cache (decoding: one row per sequence), so each
  /// row's attention needs only its own key and value of this step: `attendAlone` may then run
  /// right after the row's own rope and store, in one pool job with no step in between.
  func everyRowAlone(_ batch: Batch, _ n: Int) -> Bool {
    if n > Self.aloneMaxRows { return false }
    for i in 0..<n {
      for j in 0..<i where batch.caches[j] === batch.caches[i] { return false }
    }
    return true
  }

  /// Rows up to which a step is checked for `everyRowAlone` (a decode step has one per sequence).
  static let aloneMaxRows = 64

  /// att[row] for a row whose sequence has no other row in the step, its key and value already
  /// stored: the same kernel and order as `attention`'s per-row tasks, with the row's own scores
  /// scratch (rowScores, grown by forward), so rows may run on any thread.
  func attendAlone(layer l: Int, row: Int, position: Int, cache: KVCache) {
    let c = config
    let hd = c.headDim, group = c.heads / c.kvHeads, qDim = c.qDim, kvDim = c.kvDim
    let scale = 1 / Float(hd).squareRoot()
    let len = Int64(position + 1)
    let sc = rowScores! + row * maxContext
    for g in 0..<c.kvHeads {
      let kvOff = g * hd
      for h in g * group..<(g + 1) * group {
        let out = att + row * qDim + h * hd, qh = q + row * qDim + h * hd
        if cache.type == .f32 {
          lk_attention_head(
            out, qh, cache.key(l, 0).assumingMemoryBound(to: Float.self) + kvOff,
            cache.value(l, 0).assumingMemoryBound(to: Float.self) + kvOff, Int64(kvDim), len, Int64(hd), scale, sc)
        } else {
          lk_attention_head_f16(
            out, qh, cache.key(l, 0).assumingMemoryBound(to: UInt16.self) + kvOff,
            cache.value(l, 0).assumingMemoryBound(to: UInt16.self) + kvOff, Int64(kvDim), len, Int64(hd), scale, sc)
        }
      }
    }
  }

  /// Groups the batch's rows into runs of one cache at consecutive positions.
  func collectAttentionRuns(_ batch: Batch, _ n: Int) {
    attnRuns.removeAll(keepingCapacity: true)
    var i = 0
    while i < n {
      let cache = batch.caches[i], p0 = batch.positions[i]
      var j = i + 1
      while j < n && batch.caches[j] === cache && batch.positions[j] == p0 + (j - i) { j += 1 }
      attnRuns.append(AttentionRun(row: i, count: j - i, cache: cache, position: p0))
      i = j
    }
  }
}
