import CKernels
import Tensor

/// The products of the training pass: the frozen base (4-bit weights dequantized into the
/// per-thread scratch, then sgemm) and the LoRA pairs, each forward next to its backward.
/// Every pool job splits its output so no two threads write the same element.
extension LoRATrainingContext {
  // MARK: base product (frozen)

  /// y (n, w.rows; ldy) = x (n, w.cols; ldx) · Wᵀ.
  /// Each thread dequantizes its own slice of W's rows, chunk by chunk, into its part of the
  /// scratch and multiplies it with sgemm.
  func baseForward(
    _ y: UnsafeMutablePointer<Float>, ldy: Int, _ w: WeightMatrix, _ x: UnsafePointer<Float>, ldx: Int, n: Int
  ) {
    let rows = w.rows, cols = w.cols, code = w.type.code, isF32 = w.type == .f32, rowBytes = w.rowBytes
    let scratch = wScratch, region = wScratchCount / pool.threads
    pool.run { ith, nth in
      let per = ((rows + nth - 1) / nth + 15) & ~15
      let lo = min(rows, per * ith), hi = min(rows, per * (ith + 1))
      if lo >= hi || n == 0 { return }
      let mine = scratch + region * ith
      let chunk = max(1, region / cols)
      var r0 = lo
      while r0 < hi {
        let r1 = min(hi, r0 + chunk)
        let wf: UnsafePointer<Float>
        if isF32 {
          wf = (w.data + r0 * rowBytes).assumingMemoryBound(to: Float.self)
        } else {
          for r in r0..<r1 { lk_dequantize_row(code, w.data + r * rowBytes, mine + (r - r0) * cols, Int64(cols)) }
          wf = UnsafePointer(mine)
        }
        BLAS.gemmNT(m: n, n: r1 - r0, k: cols, a: x, lda: ldx, b: wf, ldb: cols, c: y + r0, ldc: ldy)
        r0 = r1
      }
    }
  }

  /// dx (n, w.cols; lddx) += dy (n, w.rows; lddy) · W — the base product's backward (the base is
  /// frozen, so no weight gradient). Each thread owns a band of dx's columns (whole quantization
  /// blocks) and dequantizes that band of W's rows, chunk by chunk, into its scratch.
  func baseBackward(
    _ dx: UnsafeMutablePointer<Float>, lddx: Int, _ w: WeightMatrix, _ dy: UnsafePointer<Float>, lddy: Int, n: Int
  ) {
    let rows = w.rows, cols = w.cols, code = w.type.code, isF32 = w.type == .f32, rowBytes = w.rowBytes
    let blockElems = w.type.blockElements, blockBytes = w.type.rowBytes(blockElems)!
    let grain = max(blockElems, 16)
    let scratch = wScratch, region = wScratchCount / pool.threads
    pool.run { ith, nth in
      let per = ((cols + nth - 1) / nth + grain - 1) / grain * grain
      let c0 = min(cols, per * ith), c1 = min(cols, per * (ith + 1))
      if c0 >= c1 || n == 0 { return }
      let band = c1 - c0
      let mine = scratch + region * ith
      let chunk = max(1, region / band)
      var r0 = 0
      while r0 < rows {
        let r1 = min(rows, r0 + chunk)
        let wf: UnsafePointer<Float>, ldw: Int
        if isF32 {
          wf = (w.data + r0 * rowBytes).assumingMemoryBound(to: Float.self) + c0
          ldw = cols
        } else {
          let off = c0 / blockElems * blockBytes
          for r in r0..<r1 {
            lk_dequantize_row(code, w.data + r * rowBytes + off, mine + (r - r0) * band, Int64(band))
          }
          wf = UnsafePointer(mine)
          ldw = band
        }
        BLAS.gemmNN(
          m: n, n: band, k: r1 - r0, a: dy + r0, lda: lddy, b: wf, ldb: ldw, beta: 1, c: dx + c0, ldc: lddx)
        r0 = r1
      }
    }
  }

  // MARK: LoRA pair

  /// The saved A·x (n0, rank) of module `m` in layer `l`.
  func loraSaved(_ l: Int, _ m: LoRAModule) -> UnsafeMutablePointer<Float> {
    loraT + ((l * modules.count + moduleSlot[m.index]) * n0) * rank
  }

  /// y (n, rows; ldy) += scale · (x · Aᵀ) · Bᵀ, saving t = x · Aᵀ (n, r) in `t`.
  func loraForward(
    _ y: UnsafeMutablePointer<Float>, ldy: Int, _ s: LoRALayout.Slot, _ params: UnsafePointer<Float>,
    x: UnsafePointer<Float>, ldx: Int, n: Int, t: UnsafeMutablePointer<Float>
  ) {
    let a = params + s.a, b = params + s.b, r = s.rank
    pool.run { ith, nth in
      let i0 = n * ith / nth, i1 = n * (ith + 1) / nth
      if i0 < i1 {
        BLAS.gemmNT(m: i1 - i0, n: r, k: s.cols, a: x + i0 * ldx, lda: ldx, b: a, ldb: s.cols, c: t + i0 * r, ldc: r)
      }
    }
    pool.run { ith, nth in
      let c0 = s.rows * ith / nth, c1 = s.rows * (ith + 1) / nth
      if c0 < c1 && n > 0 {
        BLAS.gemmNT(
          m: n, n: c1 - c0, k: r, alpha: s.scale, a: t, lda: r, b: b + c0 * r, ldb: r, beta: 1, c: y + c0, ldc: ldy)
      }
    }
  }

  /// The LoRA pair's backward, given dy (n, rows; lddy), its input x and its saved t:
  ///   dB += scale · dyᵀ · t,  dt = scale · dy · B,  dA += dtᵀ · x,  dx += dt · A (when dx is given).
  func loraBackward(
    _ s: LoRALayout.Slot, _ params: UnsafePointer<Float>, _ grads: UnsafeMutablePointer<Float>,
    dy: UnsafePointer<Float>, lddy: Int, x: UnsafePointer<Float>, ldx: Int, t: UnsafePointer<Float>,
    dx: UnsafeMutablePointer<Float>?, lddx: Int, n: Int
  ) {
    if n == 0 { return }
    let a = params + s.a, b = params + s.b, dA = grads + s.a, dB = grads + s.b, r = s.rank
    let dt = self.dt
    pool.run { ith, nth in
      let c0 = s.rows * ith / nth, c1 = s.rows * (ith + 1) / nth
      if c0 < c1 {
        BLAS.gemmTN(
          m: c1 - c0, n: r, k: n, alpha: s.scale, a: dy + c0, lda: lddy, b: t, ldb: r, beta: 1, c: dB + c0 * r, ldc: r)
      }
      let i0 = n * ith / nth, i1 = n * (ith + 1) / nth
      if i0 < i1 {
        BLAS.gemmNN(
          m: i1 - i0, n: r, k: s.rows, alpha: s.scale, a: dy + i0 * lddy, lda: lddy, b: b, ldb: r, c: dt + i0 * r,
          ldc: r)
      }
    }
    pool.run { ith, nth in
      let c0 = s.cols * ith / nth, c1 = s.cols * (ith + 1) / nth
      if c0 >= c1 { return }
      BLAS.gemmTN(m: r, n: c1 - c0, k: n, a: dt, lda: r, b: x + c0, ldb: ldx, beta: 1, c: dA + c0, ldc: s.cols)
      if let dx {
        BLAS.gemmNN(m: n, n: c1 - c0, k: r, a: dt, lda: r, b: a + c0, ldb: s.cols, beta: 1, c: dx + c0, ldc: lddx)
      }
    }
  }

  /// A base product plus, where the adapter targets `m`, its LoRA pair: y = x · (W + s·B·A)ᵀ.
  func projectForward(
    _ y: UnsafeMutablePointer<Float>, ldy: Int, _ w: WeightMatrix, _ l: Int, _ m: LoRAModule,
    x: UnsafePointer<Float>, ldx: Int, n: Int, layout: LoRALayout?, params: UnsafePointer<Float>?
  ) {
    baseForward(y, ldy: ldy, w, x, ldx: ldx, n: n)
    if let layout, let params, let s = layout.slot(layer: l, module: m) {
      loraForward(y, ldy: ldy, s, params, x: x, ldx: ldx, n: n, t: loraSaved(l, m))
    }
  }

  /// Its backward: the LoRA gradients of `m` and, when dx is given, dx += dy · (W + s·B·A).
  func projectBackward(
    _ w: WeightMatrix, _ l: Int, _ m: LoRAModule, dy: UnsafePointer<Float>, lddy: Int, x: UnsafePointer<Float>,
    ldx: Int, dx: UnsafeMutablePointer<Float>?, lddx: Int, n: Int, layout: LoRALayout,
    params: UnsafePointer<Float>, grads: UnsafeMutablePointer<Float>
  ) {
    if let s = layout.slot(layer: l, module: m) {
      loraBackward(
        s, params, grads, dy: dy, lddy: lddy, x: x, ldx: ldx, t: loraSaved(l, m), dx: dx, lddx: lddx, n: n)
    }
    if let dx { baseBackward(dx, lddx: lddx, w, dy, lddy: lddy, n: n) }
  }
}
