import CKernels
import Foundation

extension LlamaContext {
  /// att[i, head h] = softmax(q[i,h] · K[0...pos_i]ᵀ / √hd) · V[0...pos_i], with the keys and
  /// values of row i's own sequence (GQA: head h reads kv head h / (heads / kvHeads)).
  /// Split over (row, head) pairs across the pool; each thread has its own score buffer.
  func attention(layer l: Int, batch: Batch, n: Int) {
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
            let qh = q + i * c.qDim + h * hd
            let kvOff = (h / group) * hd
            var mx = -Float.infinity
            for t in 0..<len {
              let d = lk_dot_f32(qh, cache.key(l, t) + kvOff, Int64(hd)) * scale
              s[t] = d
              if d > mx { mx = d }
            }
            var sum: Float = 0
            for t in 0..<len {
              let e = expf(s[t] - mx)
              s[t] = e
              sum += e
            }
            let out = att + i * c.qDim + h * hd
            out.update(repeating: 0, count: hd)
            let inv = 1 / sum
            for t in 0..<len {
              lk_axpy_f32(out, s[t] * inv, cache.value(l, t) + kvOff, Int64(hd))
            }
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
