import CKernels
import Foundation
import Tensor

extension LlamaContext {
  /// att[i, head h] = softmax(q[i,h] · K[0...pos_i]ᵀ / √hd) · V[0...pos_i], with the keys and
  /// values of row i's own sequence (GQA: head h reads kv head h / (heads / kvHeads)).
  /// Split over (row, head) pairs across the pool; each thread has its own score buffer.
  func attention(layer l: Int, batch: Batch, n: Int) {
    // A prefill (one sequence, consecutive positions) goes through GEMMs; decode rows one by one.
    if n >= Self.gemmAttentionMinRows, isSingleRun(batch, n) {
      attentionGEMM(layer: l, batch: batch, n: n)
      return
    }
    let c = config
    let hd = c.headDim
    let heads = c.heads
    let group = c.heads / c.kvHeads
    let scale = 1 / Float(hd).squareRoot()
    let q = self.q, att = self.att, scores = self.scores, maxCtx = maxContext
    batch.positions.withUnsafeBufferPointer { pos in
      batch.caches.withUnsafeBufferPointer { caches in
        let total = n * heads
        let body: (Range<Int>, Int) -> Void = { range, ith in
          let s = scores + ith * maxCtx
          for task in range {
            let i = task / heads, h = task % heads
            let cache = caches[i]
            let len = pos[i] + 1
            let kvOff = (h / group) * hd
            lk_attention_head(
              att + i * c.qDim + h * hd, q + i * c.qDim + h * hd, cache.key(l, 0) + kvOff, cache.value(l, 0) + kvOff,
              Int64(c.kvDim), Int64(len), Int64(hd), scale, s)
          }
        }
        if pool.threads == 1 || total < 2 {
          body(0..<total, 0)
        } else {
          pool.run { ith, nth in
            let lo = total * ith / nth, hi = total * (ith + 1) / nth
            if lo < hi { body(lo..<hi, ith) }
          }
        }
      }
    }
  }
}

extension LlamaContext {
  /// Rows from which a single-sequence batch uses the GEMM attention.
  static let gemmAttentionMinRows = 8
  /// Query rows per GEMM task: bounds the score scratch and the causal waste.
  static let gemmAttentionChunk = 64

  /// True when all rows belong to one cache at consecutive positions.
  func isSingleRun(_ batch: Batch, _ n: Int) -> Bool {
    let c0 = batch.caches[0]
    let p0 = batch.positions[0]
    for i in 1..<n where batch.caches[i] !== c0 || batch.positions[i] != p0 + i { return false }
    return true
  }

  /// Attention of a run of consecutive query rows of one sequence, per (head, chunk of rows):
  /// S = Q·Kᵀ/√hd by sgemm, causal softmax, O = S·V by sgemm. OpenBLAS runs single-threaded
  /// inside our pool's threads; each thread has its own slice of the score scratch.
  func attentionGEMM(layer l: Int, batch: Batch, n: Int) {
    let c = config
    let hd = c.headDim, heads = c.heads, group = c.heads / c.kvHeads
    let qDim = c.qDim, kvDim = c.kvDim
    let scale = 1 / Float(hd).squareRoot()
    let cache = batch.caches[0]
    let p0 = batch.positions[0]
    let chunk = Self.gemmAttentionChunk
    let nChunks = (n + chunk - 1) / chunk
    let tasks = heads * nChunks
    let q = self.q, att = self.att, scratch = gemmScores, perThread = chunk * maxContext
    pool.run { ith, nth in
      let s = scratch + ith * perThread
      var t = ith
      while t < tasks {
        // Interleave tasks so both threads get early (cheap) and late (costly) chunks.
        let h = t % heads, ci = t / heads
        t += nth
        let r0 = ci * chunk, r1 = min(n, r0 + chunk)
        let rows = r1 - r0
        let len = p0 + r1  // keys 0..<len cover every row of the chunk
        let kvOff = (h / group) * hd
        let k0 = UnsafePointer(cache.key(l, 0) + kvOff), v0 = UnsafePointer(cache.value(l, 0) + kvOff)
        BLAS.gemmNT(
          m: rows, n: len, k: hd, alpha: scale, a: q + r0 * qDim + h * hd, lda: qDim, b: k0, ldb: kvDim, c: s, ldc: len)
        for r in 0..<rows {
          let row = s + r * len
          let valid = p0 + r0 + r + 1
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
        BLAS.gemmNN(m: rows, n: hd, k: len, a: s, lda: len, b: v0, ldb: kvDim, c: att + r0 * qDim + h * hd, ldc: qDim)
      }
    }
  }
}
