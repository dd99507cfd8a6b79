import Foundation
import Tensor

/// Causal self-attention with grouped KV heads over each sequence of the pass, forward next to
/// its backward. Sequence s owns rows [seqRow[s], seqRow[s] + T); its probabilities P (heads, T, T)
/// sit at seqProbs[s] in the layer's block, zero above the diagonal.
extension LoRATrainingContext {
  /// att[i, h] = Σ_j P[h, i, j] · v[j, h / group], P[h, i] = softmax_{j ≤ i}(q[i, h] · k[j, h / group] / √hd).
  /// One task per (sequence, head), round-robin over the threads; two sgemm per task.
  func attentionForward(
    _ att: UnsafeMutablePointer<Float>, _ P: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
    k: UnsafePointer<Float>, v: UnsafePointer<Float>
  ) {
    let c = config
    let hd = c.headDim, heads = c.heads, group = c.heads / c.kvHeads, qDim = c.qDim, kvDim = c.kvDim
    let scale = 1 / Float(hd).squareRoot()
    let tasks = seqRow.count * heads
    let rows = seqRow, lens = seqLen, offs = seqProbs
    pool.run { ith, nth in
      var task = ith
      while task < tasks {
        let s = task / heads, h = task % heads
        task += nth
        let T = lens[s], r0 = rows[s], g = h / group
        let p = P + offs[s] + h * T * T
        let qh = q + r0 * qDim + h * hd, kg = k + r0 * kvDim + g * hd, vg = v + r0 * kvDim + g * hd
        BLAS.gemmNT(m: T, n: T, k: hd, alpha: scale, a: qh, lda: qDim, b: kg, ldb: kvDim, c: p, ldc: T)
        for i in 0..<T {
          let row = p + i * T
          var mx = -Float.infinity
          for j in 0...i where row[j] > mx { mx = row[j] }
          var sum: Float = 0
          for j in 0...i {
            let e = expf(row[j] - mx)
            row[j] = e
            sum += e
          }
          let inv = 1 / sum
          for j in 0...i { row[j] *= inv }
          if i + 1 < T { (row + i + 1).update(repeating: 0, count: T - i - 1) }
        }
        BLAS.gemmNN(m: T, n: hd, k: T, a: p, lda: T, b: vg, ldb: kvDim, c: att + r0 * qDim + h * hd, ldc: qDim)
      }
    }
  }

  /// The backward, given dAtt (rows, qDim): for each head h of kv head g,
  ///   dP = dAtt_h · v_gᵀ,  dv_g += Pᵀ · dAtt_h,  dS = P ⊙ (dP − rowsum(P ⊙ dP)),
  ///   dq_h += dS · k_g / √hd,  dk_g += dSᵀ · q_h / √hd.
  /// One task per (sequence, kv head), so the heads sharing dk_g and dv_g run on one thread.
  func attentionBackward(
    dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
    dAtt: UnsafePointer<Float>, P: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
    v: UnsafePointer<Float>
  ) {
    let c = config
    let hd = c.headDim, kvHeads = c.kvHeads, group = c.heads / c.kvHeads
    let qDim = c.qDim, kvDim = c.kvDim
    let scale = 1 / Float(hd).squareRoot()
    let tasks = seqRow.count * kvHeads
    let rows = seqRow, lens = seqLen, offs = seqProbs
    let scratch = self.dP, perThread = maxSequence * maxSequence
    pool.run { ith, nth in
      var task = ith
      let dS = scratch + ith * perThread
      while task < tasks {
        let s = task / kvHeads, g = task % kvHeads
        task += nth
        let T = lens[s], r0 = rows[s]
        let kg = k + r0 * kvDim + g * hd, vg = v + r0 * kvDim + g * hd
        let dkg = dk + r0 * kvDim + g * hd, dvg = dv + r0 * kvDim + g * hd
        for h in (g * group)..<((g + 1) * group) {
          let p = P + offs[s] + h * T * T
          let dOh = dAtt + r0 * qDim + h * hd, qh = q + r0 * qDim + h * hd
          BLAS.gemmNT(m: T, n: T, k: hd, a: dOh, lda: qDim, b: vg, ldb: kvDim, c: dS, ldc: T)
          BLAS.gemmTN(m: T, n: hd, k: T, a: p, lda: T, b: dOh, ldb: qDim, beta: 1, c: dvg, ldc: kvDim)
          for i in 0..<T {
            let pr = p + i * T, dr = dS + i * T
            var dot: Float = 0
            for j in 0...i { dot += pr[j] * dr[j] }
            for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) }
            if i + 1 < T { (dr + i + 1).update(repeating: 0, count: T - i - 1) }
          }
          BLAS.gemmNN(
            m: T, n: hd, k: T, alpha: scale, a: dS, lda: T, b: kg, ldb: kvDim, beta: 1, c: dq + r0 * qDim + h * hd,
            ldc: qDim)
          BLAS.gemmTN(m: T, n: hd, k: T, alpha: scale, a: dS, lda: T, b: qh, ldb: qDim, beta: 1, c: dkg, ldc: kvDim)
        }
      }
    }
  }
}
