import CKernels

/// How batched products (more than one activation row) are computed.
public enum BatchedProduct: String, Sendable, CaseIterable {
  /// Activations quantized to 8 bits per block, integer dot products in `lk_matmul` (our threads).
  case int8
  /// Weights dequantized block-wise into a float scratch, then OpenBLAS sgemm (single-threaded,
  /// one slice of rows per pool thread).
  case blas
}

/// Activation rows ready for products with weights of one activation type: the float rows and,
/// for quantized weights, their 8-bit form in the workspace.
public struct Activations {
  public let x: UnsafePointer<Float>
  public let ldx: Int
  public let n: Int
  public let cols: Int
  public let actType: Int32
  public let q: UnsafeRawPointer?
  public let qStride: Int
}

/// The matmul front: `y = x · Wᵀ` for weight matrices in their quantized form. One row uses the
/// quantized matvec; several rows use the int8 GEMM or OpenBLAS (`batched`). Owns its scratch
/// buffers, sized once for the largest product; nothing is allocated per call.
/// Used only by the compute thread that owns `pool`.
public final class LinearWorkspace: @unchecked Sendable {  // owned by one compute thread
  public let pool: ComputePool
  public var batched: BatchedProduct
  public let maxRows: Int
  public let maxCols: Int
  private let qSlots: [UnsafeMutableRawPointer]  // 2 × (maxRows, actRowBytes(maxCols))
  private let qSlotBytes: Int
  private var nextSlot = 0
  private let wScratch: UnsafeMutablePointer<Float>  // (maxWeightRows, maxCols) when batched == .blas
  private let wScratchCount: Int

  /// - maxWeightElements: the largest rows×cols of a matrix multiplied in batches through BLAS.
  public init(pool: ComputePool, maxRows: Int, maxCols: Int, maxWeightElements: Int, batched: BatchedProduct) {
    self.pool = pool
    self.maxRows = maxRows
    self.maxCols = maxCols
    self.batched = batched
    // Q8_K rows are the largest activation form: 292 bytes per 256 elements.
    let perRow = (maxCols + 255) / 256 * 292 + 64
    qSlotBytes = perRow * maxRows
    qSlots = (0..<2).map { _ in UnsafeMutableRawPointer.allocate(byteCount: perRow * maxRows, alignment: 64) }
    wScratchCount = maxWeightElements
    wScratch = .allocate(capacity: maxWeightElements)
    BLAS.setThreads(1)  // OpenBLAS runs inside our pool's threads, one slice each
  }

  deinit {
    for s in qSlots { s.deallocate() }
    wScratch.deallocate()
  }

  /// Prepares `n` rows of `x` (row stride `ldx`) for products with matrices like `w`.
  /// `produce(i)`, when given, first writes row i of `x` (a row-wise step such as a norm), in the
  /// same pool job as the row's quantization: one synchronisation instead of two.
  public func activations(
    _ x: UnsafePointer<Float>, ldx: Int, n: Int, for w: WeightMatrix, produce: ((Int) -> Void)? = nil
  ) -> Activations {
    precondition(n <= maxRows && w.cols <= maxCols)
    let act = lk_act_type(w.type.code)
    let needsQ = w.type.isQuantized && (n == 1 || batched == .int8)
    guard needsQ else {
      if let produce {
        if n < 4 {
          for i in 0..<n { produce(i) }
        } else {
          pool.parallelFor(n) { r in for i in r { produce(i) } }
        }
      }
      return Activations(x: x, ldx: ldx, n: n, cols: w.cols, actType: act, q: nil, qStride: 0)
    }
    let stride = Int(lk_act_row_bytes(w.type.code, Int64(w.cols)))
    let slot = qSlots[nextSlot]
    nextSlot ^= 1
    let code = w.type.code
    let cols = w.cols
    if n == 1 {
      produce?(0)
      lk_quantize_act(code, x, slot, Int64(cols))
    } else {
      pool.parallelFor(n) { r in
        for i in r {
          produce?(i)
          lk_quantize_act(code, x + i * ldx, slot + i * stride, Int64(cols))
        }
      }
    }
    return Activations(x: x, ldx: ldx, n: n, cols: w.cols, actType: act, q: UnsafeRawPointer(slot), qStride: stride)
  }

  /// y[i * ldy + r] = dot(x row i, W row r) for all rows i of `a` and all rows r of `w`.
  /// `side` chunks of other work (`sideWork(i)`, i < side) may ride along: see `products`.
  public func linear(
    _ y: UnsafeMutablePointer<Float>, ldy: Int, _ w: WeightMatrix, _ a: Activations, side: Int = 0,
    _ sideWork: (Int) -> Void = { _ in }
  ) {
    precondition(a.cols == w.cols)
    let code = w.type.code
    if side > 0 {
      if let q = a.q {
        precondition(a.actType == lk_act_type(code), "activations prepared for another weight type")
        products((y, ldy, w), nil, nil, q, a, side: side, sideWork)
      } else {
        linear(y, ldy: ldy, w, a)
        pool.run(chunks: side) { i, _ in sideWork(i) }
      }
      return
    }
    if let q = a.q {
      precondition(a.actType == lk_act_type(code), "activations prepared for another weight type")
      if a.n == 1 && w.pre == nil {  // with prepacked records, lk_matmul_pre (see mm_q32)
        lk_matvec_mt(pool.raw, code, y, w.data, q, Int64(w.cols), Int64(w.rows))
      } else {
        lk_matmul_mt_pre(
          pool.raw, code, y, Int64(ldy), w.data, w.pre, q, Int64(a.qStride), Int64(a.n), Int64(w.cols), Int64(w.rows))
      }
      return
    }
    // Float path: each thread dequantizes its own slice of weight rows into its part of the
    // scratch and multiplies it with OpenBLAS running single-threaded inside our pool, so the
    // cores never carry two sets of busy threads.
    let x = a.x, ldx = a.ldx, n = a.n, cols = w.cols, rows = w.rows
    let scratch = wScratch, scratchCount = wScratchCount
    let isF32 = w.type == .f32
    let rowBytes = w.rowBytes
    pool.run { ith, nth in
      let lo = rows * ith / nth, hi = rows * (ith + 1) / nth
      if lo >= hi { return }
      let mine = scratch + (scratchCount / nth) * ith
      let chunk = max(1, (scratchCount / nth) / cols)
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
        if n == 1 {
          for r in r0..<r1 { y[r] = lk_dot_f32(wf + (r - r0) * cols, x, Int64(cols)) }
        } else {
          BLAS.gemmNT(m: n, n: r1 - r0, k: cols, a: x, lda: ldx, b: wf, ldb: cols, c: y + r0, ldc: ldy)
        }
        r0 = r1
      }
    }
  }

  /// Several products over the same activations (q, k, v; gate, up) in one pool job: one
  /// wake-up of the threads instead of one per matrix. Each matrix's rows are split across
  /// the threads in multiples of 16. Products that the BLAS path computes go one by one.
  public func linear(
    _ p: (UnsafeMutablePointer<Float>, WeightMatrix), _ p2: (UnsafeMutablePointer<Float>, WeightMatrix),
    _ p3: (UnsafeMutablePointer<Float>, WeightMatrix)? = nil, ldy: (Int, Int, Int), _ a: Activations, side: Int = 0,
    _ sideWork: (Int) -> Void = { _ in }
  ) {
    guard let q = a.q, compatible(a, p2.1), p3 == nil || compatible(a, p3!.1) else {
      linear(p.0, ldy: ldy.0, p.1, a)
      linear(p2.0, ldy: ldy.1, p2.1, compatible(a, p2.1) ? a : activations(a.x, ldx: a.ldx, n: a.n, for: p2.1))
      if let p3 {
        linear(p3.0, ldy: ldy.2, p3.1, compatible(a, p3.1) ? a : activations(a.x, ldx: a.ldx, n: a.n, for: p3.1))
      }
      if side > 0 { pool.run(chunks: side) { i, _ in sideWork(i) } }
      return
    }
    products(
      (p.0, ldy.0, p.1), (p2.0, ldy.1, p2.1), p3.map { ($0.0, ldy.2, $0.1) }, q, a, side: side, sideWork)
  }

  /// Up to three products over the same quantized activations in one pool job, each matrix's
  /// rows split into `productChunks` chunks of multiples of 16, plus `side` chunks of other work
  /// spread evenly among them. The threads take chunks in order as they come free, so memory
  /// bound side work (the LoRA factors of many adapters, streamed from memory) runs on one core
  /// while the other computes, instead of after the products.
  func products(
    _ p0: (UnsafeMutablePointer<Float>, Int, WeightMatrix), _ p1: (UnsafeMutablePointer<Float>, Int, WeightMatrix)?,
    _ p2: (UnsafeMutablePointer<Float>, Int, WeightMatrix)?, _ q: UnsafeRawPointer, _ a: Activations, side: Int,
    _ sideWork: (Int) -> Void
  ) {
    let n = a.n, qs = a.qStride
    let base = productChunks
    let one: ((UnsafeMutablePointer<Float>, Int, WeightMatrix), Int) -> Void = { p, ith in
      let (y, ldy, w) = p
      let per = ((w.rows + base - 1) / base + 15) & ~15
      let r0 = min(w.rows, per * ith), r1 = min(w.rows, per * (ith + 1))
      if r0 >= r1 { return }
      if n == 1 && w.pre == nil {  // as in linear above
        lk_matvec(w.type.code, y + r0, w.data, q, Int64(w.cols), Int64(r0), Int64(r1))
      } else {
        lk_matmul_pre(
          w.type.code, y, Int64(ldy), w.data, w.pre, q, Int64(qs), Int64(n), Int64(w.cols), Int64(r0), Int64(r1))
      }
    }
    let total = base + side
    pool.run(chunks: total) { i, _ in
      // Chunk i is side work when the running share of side chunks steps up at i.
      let sideUpTo = (i + 1) * side / total
      if sideUpTo > i * side / total {
        sideWork(sideUpTo - 1)
        return
      }
      let j = i - sideUpTo
      one(p0, j)
      if let p1 { one(p1, j) }
      if let p2 { one(p2, j) }
    }
  }

  /// Row chunks of a product job: two per thread (as `lk_matvec_mt`; see parallel.c), so a thread
  /// that loses its core leaves some of its share to the other.
  var productChunks: Int { 2 * pool.threads }

  /// Convenience: prepare and multiply in one call.
  public func linear(
    _ y: UnsafeMutablePointer<Float>, ldy: Int, _ w: WeightMatrix, x: UnsafePointer<Float>, ldx: Int, n: Int
  ) {
    linear(y, ldy: ldy, w, activations(x, ldx: ldx, n: n, for: w))
  }

  /// True when activations prepared for `a` can be reused for products with `w`.
  public func compatible(_ a: Activations, _ w: WeightMatrix) -> Bool {
    a.cols == w.cols
      && (a.q == nil ? !(w.type.isQuantized && (a.n == 1 || batched == .int8)) : a.actType == lk_act_type(w.type.code))
  }
}
