import CKernels
import Foundation
import Tensor

/// The whole pass: forward through the blocks and the head, then backward in reverse, in the
/// order of the serving forward (`LlamaContext.forward`). The ops themselves, each with its
/// backward beside it, are in `Training+Products`, `+Elementwise`, `+Attention` and `+Head`.
extension LoRATrainingContext {
  /// Forward over the pass laid out by `layOut`: fills the saved buffers of every layer and
  /// each logit row's log-probability (`logp`); with `keepSoftmax`, leaves the softmax of each
  /// logit row in `logits` for the backward.
  func forward(
    _ pass: ArraySlice<TrainingSequence>, layout: LoRALayout?, params: UnsafePointer<Float>?, keepSoftmax: Bool
  ) {
    let c = config, w = model.weights, n = rows, N = n0
    let dim = c.dim, qDim = c.qDim, kvDim = c.kvDim, ffn = c.ffnDim

    // 1. Token embeddings, and each row's RoPE angles.
    let emb = w.tokenEmbedding, x0 = xIn
    rowToken.withUnsafeBufferPointer { toks in
      each(n) { i in emb.dequantizeRow(Int(toks[i]), into: x0 + i * dim) }
    }
    ropeAngles()

    // 2. The blocks.
    for (l, layer) in w.layers.enumerated() {
      let x = xIn + l * N * dim, xm = xMid + l * N * dim, xo = xIn + (l + 1) * N * dim
      let ql = q + l * N * qDim, kl = k + l * N * kvDim, vl = v + l * N * kvDim
      let att = attOut + l * N * qDim, gl = gate + l * N * ffn, ul = up + l * N * ffn
      // Attention: xm = x + o(attention(rope(q(norm(x))), rope(k(norm(x))), v(norm(x))))
      rmsnormForward(xn, rstdA + l * N, x, layer.attnNorm, n: n)
      projectForward(ql, ldy: qDim, layer.wq, l, .q, x: xn, ldx: dim, n: n, layout: layout, params: params)
      projectForward(kl, ldy: kvDim, layer.wk, l, .k, x: xn, ldx: dim, n: n, layout: layout, params: params)
      projectForward(vl, ldy: kvDim, layer.wv, l, .v, x: xn, ldx: dim, n: n, layout: layout, params: params)
      addBias(ql, layer.bq, qDim, n)
      addBias(kl, layer.bk, kvDim, n)
      addBias(vl, layer.bv, kvDim, n)
      rope(ql, heads: c.heads, n: n)
      rope(kl, heads: c.kvHeads, n: n)
      attentionForward(att, probs + l * c.heads * N * maxSequence, q: ql, k: kl, v: vl)
      projectForward(yb, ldy: dim, layer.wo, l, .o, x: att, ldx: qDim, n: n, layout: layout, params: params)
      add(xm, x, yb, n * dim)
      // Feed-forward: xo = xm + down(silu(gate(norm(xm))) ⊙ up(norm(xm)))
      rmsnormForward(xn, rstdF + l * N, xm, layer.ffnNorm, n: n)
      projectForward(gl, ldy: ffn, layer.wGate, l, .gate, x: xn, ldx: dim, n: n, layout: layout, params: params)
      projectForward(ul, ldy: ffn, layer.wUp, l, .up, x: xn, ldx: dim, n: n, layout: layout, params: params)
      swigluForward(hAct, gl, ul, n: n)
      projectForward(yb, ldy: dim, layer.wDown, l, .down, x: hAct, ldx: ffn, n: n, layout: layout, params: params)
      add(xo, xm, yb, n * dim)
    }

    // 3. Final norm, logits and log-softmax of the rows that score a completion token.
    headForward(keepSoftmax: keepSoftmax)
  }

  /// Backward over the pass `forward(keepSoftmax: true)` just ran: adds
  /// ∇_θ Σ_rows weight · log p(target) into `grads` (laid out by `layout`).
  func backward(layout: LoRALayout, params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>) {
    let c = config, w = model.weights, n = rows, N = n0
    let dim = c.dim, qDim = c.qDim, kvDim = c.kvDim, ffn = c.ffnDim
    dx.update(repeating: 0, count: n * dim)

    // 3. The head: dx = dL/d(final residual).
    headBackward()

    // 2. The blocks, last first. dx enters as dL/dxo and leaves as dL/dx.
    for l in stride(from: c.layers - 1, through: 0, by: -1) {
      let layer = w.layers[l]
      let x = xIn + l * N * dim, xm = xMid + l * N * dim
      let ql = q + l * N * qDim, kl = k + l * N * kvDim, vl = v + l * N * kvDim
      let att = attOut + l * N * qDim, gl = gate + l * N * ffn, ul = up + l * N * ffn
      let P = probs + l * c.heads * N * maxSequence
      // Feed-forward (recomputing its normed input and hAct): dx += dL/dxm through the norm.
      rmsnormForward(xn, rstdF + l * N, xm, layer.ffnNorm, n: n)
      swigluForward(hAct, gl, ul, n: n)
      let dh = dy
      dh.update(repeating: 0, count: n * ffn)
      projectBackward(
        layer.wDown, l, .down, dy: dx, lddy: dim, x: hAct, ldx: ffn, dx: dh, lddx: ffn, n: n, layout: layout,
        params: params, grads: grads)
      dGate.update(repeating: 0, count: n * ffn)
      dUp.update(repeating: 0, count: n * ffn)
      swigluBackward(dGate, dUp, dh, gl, ul, n: n)
      dxn.update(repeating: 0, count: n * dim)
      projectBackward(
        layer.wGate, l, .gate, dy: dGate, lddy: ffn, x: xn, ldx: dim, dx: dxn, lddx: dim, n: n, layout: layout,
        params: params, grads: grads)
      projectBackward(
        layer.wUp, l, .up, dy: dUp, lddy: ffn, x: xn, ldx: dim, dx: dxn, lddx: dim, n: n, layout: layout,
        params: params, grads: grads)
      rmsnormBackward(dx, dxn, xm, rstdF + l * N, layer.ffnNorm, n: n)

      // Attention: dx += dL/dx through o, attention, RoPE, q/k/v and the norm.
      let dAtt = dy
      dAtt.update(repeating: 0, count: n * qDim)
      projectBackward(
        layer.wo, l, .o, dy: dx, lddy: dim, x: att, ldx: qDim, dx: dAtt, lddx: qDim, n: n, layout: layout,
        params: params, grads: grads)
      dq.update(repeating: 0, count: n * qDim)
      dk.update(repeating: 0, count: n * kvDim)
      dv.update(repeating: 0, count: n * kvDim)
      attentionBackward(dq: dq, dk: dk, dv: dv, dAtt: dAtt, P: P, q: ql, k: kl, v: vl)
      rope(dq, heads: c.heads, n: n, inverse: true)
      rope(dk, heads: c.kvHeads, n: n, inverse: true)
      rmsnormForward(xn, rstdA + l * N, x, layer.attnNorm, n: n)
      // Below layer 0 is the frozen embedding: its input gradient is not needed.
      let dxnA: UnsafeMutablePointer<Float>? = l > 0 ? dxn : nil
      dxnA?.update(repeating: 0, count: n * dim)
      projectBackward(
        layer.wq, l, .q, dy: dq, lddy: qDim, x: xn, ldx: dim, dx: dxnA, lddx: dim, n: n, layout: layout,
        params: params, grads: grads)
      projectBackward(
        layer.wk, l, .k, dy: dk, lddy: kvDim, x: xn, ldx: dim, dx: dxnA, lddx: dim, n: n, layout: layout,
        params: params, grads: grads)
      projectBackward(
        layer.wv, l, .v, dy: dv, lddy: kvDim, x: xn, ldx: dim, dx: dxnA, lddx: dim, n: n, layout: layout,
        params: params, grads: grads)
      if let dxnA { rmsnormBackward(dx, dxnA, x, rstdA + l * N, layer.attnNorm, n: n) }
    }
  }

  /// out = a + b, count floats.
  func add(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) {
    for i in 0..<count { out[i] = a[i] + b[i] }
  }

  /// y[i] += bias for n rows of `width` (Qwen2's q/k/v biases; frozen, so no backward of its own).
  func addBias(_ y: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>?, _ width: Int, _ n: Int) {
    guard let b else { return }
    for i in 0..<n { lk_axpy_f32(y + i * width, 1, b, Int64(width)) }
  }
}
