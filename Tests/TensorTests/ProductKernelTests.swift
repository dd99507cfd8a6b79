import CKernels
import Testing

/// Matvec / matmul on every ISA against a float reference.
///
/// The kernels compute dot(W row, dequantized 8-bit activations) exactly up to float rounding, so
/// each result is checked (a) against that dot in Double, tightly, and (b) against the dot with
/// the original float activations within the bound of 8-bit activation quantization.
extension KernelISATests {
  /// Everything one product test needs: weights, activations in float and quantized form.
  struct Problem {
    let type: KType
    let rows: Int, cols: Int, ntok: Int
    let w: [UInt8]  // (rows, rowBytes)
    let wf: [Float]  // (rows, cols) dequantized weights
    let x: [Float]  // (ntok, cols)
    let xq: [UInt8]  // (ntok, actRowBytes)
    let xf: [Float]  // (ntok, cols) dequantized activations
    var actBytes: Int { Int(lk_act_row_bytes(type.code, Int64(cols))) }

    init(_ type: KType, rows: Int, cols: Int, ntok: Int, seed: UInt64) {
      var rng = SeededRNG(seed: seed)
      self.type = type
      self.rows = rows
      self.cols = cols
      self.ntok = ntok
      (w, wf) = randomWeights(type, rows: rows, cols: cols, &rng)
      x = rng.floats(ntok * cols)
      let ab = Int(lk_act_row_bytes(type.code, Int64(cols)))
      let act = lk_act_type(type.code)
      var xq = [UInt8](repeating: 0, count: ab * ntok)
      var xf = [Float](repeating: 0, count: ntok * cols)
      for t in 0..<ntok {
        x.withUnsafeBufferPointer { xp in
          xq.withUnsafeMutableBytes {
            lk_quantize_act(type.code, xp.baseAddress! + t * cols, $0.baseAddress! + t * ab, Int64(cols))
          }
        }
        xq.withUnsafeBytes { q in
          xf.withUnsafeMutableBufferPointer {
            lk_dequantize_row_ref(act, q.baseAddress! + t * ab, $0.baseAddress! + t * cols, Int64(cols))
          }
        }
      }
      self.xq = xq
      self.xf = xf
      computeReferences()
    }

    /// Per (token, row): dot with the dequantized activations, with the float activations,
    /// Σ|w·x'| (for tolerances), and Σ|w|·|x - x'| (the worst effect of activation rounding).
    private(set) var exact: [Double] = [], float: [Double] = [], mag: [Double] = [], bound: [Double] = []

    mutating func computeReferences() {
      var exact = [Double](repeating: 0, count: ntok * rows)
      var float = exact, mag = exact, bound = exact
      let cols = cols
      wf.withUnsafeBufferPointer { w in
        x.withUnsafeBufferPointer { x in
          xf.withUnsafeBufferPointer { xf in
            for t in 0..<ntok {
              for r in 0..<rows {
                var e = 0.0, f = 0.0, m = 0.0, b = 0.0
                for c in 0..<cols {
                  let wv = Double(w[r * cols + c]), xv = Double(x[t * cols + c]), qv = Double(xf[t * cols + c])
                  e += wv * qv
                  f += wv * xv
                  m += abs(wv * qv)
                  b += abs(wv) * abs(xv - qv)
                }
                exact[t * rows + r] = e
                float[t * rows + r] = f
                mag[t * rows + r] = m
                bound[t * rows + r] = b
              }
            }
          }
        }
      }
      (self.exact, self.float, self.mag, self.bound) = (exact, float, mag, bound)
    }

    /// Tolerance for float rounding in the kernels (and the Double reference).
    func tolerance(_ r: Int, _ t: Int) -> Double { (2e-5 + 4e-9 * Double(cols)) * mag[t * rows + r] + 1e-6 }

    /// Checks one result y against both references.
    func check(_ y: Float, _ r: Int, _ t: Int, _ what: String) {
      let i = t * rows + r, tol = tolerance(r, t)
      #expect(
        abs(Double(y) - exact[i]) <= tol, "\(type) \(rows)x\(cols) \(what) row \(r) token \(t): \(y) vs \(exact[i])")
      if !type.isFloat {
        #expect(abs(Double(y) - float[i]) <= bound[i] * 1.001 + tol, "\(type) \(what) vs float activations")
      }
    }
  }

  static let shapes: [(rows: Int, cols: Int)] = [(37, 576), (16, 1536), (6, 9600), (5, 96)]

  static func shapes(for type: KType) -> [(rows: Int, cols: Int)] {
    if type.blockElems == 256 { return [(37, 512), (9, 1536)] }
    if type.isFloat { return [(37, 576), (7, 101), (5, 9600)] }
    return shapes
  }

  @Test(arguments: KType.weights)
  func matvecMatchesFloatReference(_ type: KType) {
    for (i, shape) in Self.shapes(for: type).enumerated() {
      let p = Problem(type, rows: shape.rows, cols: shape.cols, ntok: 2, seed: 0xA0 + UInt64(i))
      var results: [[Float]] = []
      forEachISA { isa in
        var all: [Float] = []
        for t in 0..<p.ntok {
          var y = [Float](repeating: .nan, count: p.rows)
          p.w.withUnsafeBytes { w in
            p.xq.withUnsafeBytes { x in
              lk_matvec(type.code, &y, w.baseAddress!, x.baseAddress! + t * p.actBytes, Int64(p.cols), 0, Int64(p.rows))
            }
          }
          for r in 0..<p.rows { p.check(y[r], r, t, "matvec \(isaNames[Int(isa)])") }
          // a row range that does not start at 0 writes y[r - r0]
          var part = [Float](repeating: .nan, count: p.rows - 3)
          p.w.withUnsafeBytes { w in
            p.xq.withUnsafeBytes { x in
              lk_matvec(
                type.code, &part, w.baseAddress!, x.baseAddress! + t * p.actBytes, Int64(p.cols), 3, Int64(p.rows))
            }
          }
          #expect(Array(y[3...]) == part, "\(type) matvec rows [3, \(p.rows)) on \(isaNames[Int(isa)])")
          all += y
        }
        results.append(all)
      }
      // all ISA paths agree closely with each other (same integer dots, different float order)
      for (k, other) in results.enumerated().dropFirst() {
        for t in 0..<p.ntok {
          for r in 0..<p.rows {
            let a = results[0][t * p.rows + r], b = other[t * p.rows + r]
            let tol = p.tolerance(r, t)
            #expect(abs(Double(a - b)) <= tol, "\(type) scalar vs \(isaNames[k]) row \(r): \(a) vs \(b)")
          }
        }
      }
    }
  }

  @Test(arguments: KType.weights)
  func matmulMatchesMatvec(_ type: KType) {
    let cols = type.blockElems == 256 ? 512 : 576
    // 31 tokens = 16 + 8 + 4 + 2 + 1: every token tile size.
    let p = Problem(type, rows: 37, cols: cols, ntok: 31, seed: 0xB0 + UInt64(type.code))
    let ldy = p.rows + 3
    forEachISA { isa in
      var Y = [Float](repeating: -7, count: p.ntok * ldy)
      p.w.withUnsafeBytes { w in
        p.xq.withUnsafeBytes { x in
          // two row ranges: Y[t * ldy + r] uses the absolute row index
          lk_matmul(
            type.code, &Y, Int64(ldy), w.baseAddress!, x.baseAddress!, Int64(p.actBytes), Int64(p.ntok), Int64(cols), 0,
            13)
          lk_matmul(
            type.code, &Y, Int64(ldy), w.baseAddress!, x.baseAddress!, Int64(p.actBytes), Int64(p.ntok), Int64(cols),
            13, Int64(p.rows))
        }
      }
      for t in 0..<p.ntok {
        for r in 0..<p.rows { p.check(Y[t * ldy + r], r, t, "matmul \(isaNames[Int(isa)])") }
        #expect(Y[t * ldy + p.rows..<t * ldy + ldy].allSatisfy { $0 == -7 }, "padding of Y row \(t) untouched")
      }
    }
  }

  @Test(arguments: [KType.q4_1, .q8_0, .q4_0, .f16])
  func matmulChunksLongRows(_ type: KType) {
    let p = Problem(type, rows: 6, cols: 9600, ntok: 3, seed: 0xC0)
    forEachISA { isa in
      var Y = [Float](repeating: .nan, count: p.ntok * p.rows)
      p.w.withUnsafeBytes { w in
        p.xq.withUnsafeBytes { x in
          lk_matmul(
            type.code, &Y, Int64(p.rows), w.baseAddress!, x.baseAddress!, Int64(p.actBytes), Int64(p.ntok), 9600, 0,
            Int64(p.rows))
        }
      }
      for t in 0..<p.ntok { for r in 0..<p.rows { p.check(Y[t * p.rows + r], r, t, "matmul \(isaNames[Int(isa)])") } }
    }
  }

  @Test(arguments: [KType.q4_1, .q8_0, .q4_K, .f32])
  func multithreadedProductsEqualSingleThreaded(_ type: KType) {
    let cols = type.blockElems == 256 ? 512 : 576
    let p = Problem(type, rows: 200, cols: cols, ntok: 5, seed: 0xD0)
    var y1 = [Float](repeating: 0, count: p.rows)
    var Y1 = [Float](repeating: 0, count: p.rows * p.ntok)
    p.w.withUnsafeBytes { w in
      p.xq.withUnsafeBytes { x in
        lk_matvec(type.code, &y1, w.baseAddress!, x.baseAddress!, Int64(cols), 0, Int64(p.rows))
        lk_matmul(
          type.code, &Y1, Int64(p.rows), w.baseAddress!, x.baseAddress!, Int64(p.actBytes), Int64(p.ntok), Int64(cols),
          0, Int64(p.rows))
      }
    }
    for threads in [1, 2, 3] {
      let pool = lk_pool_create(Int32(threads))
      defer { lk_pool_destroy(pool) }
      var y = [Float](repeating: .nan, count: p.rows)
      var Y = [Float](repeating: .nan, count: p.rows * p.ntok)
      p.w.withUnsafeBytes { w in
        p.xq.withUnsafeBytes { x in
          lk_matvec_mt(pool, type.code, &y, w.baseAddress!, x.baseAddress!, Int64(cols), Int64(p.rows))
          lk_matmul_mt(
            pool, type.code, &Y, Int64(p.rows), w.baseAddress!, x.baseAddress!, Int64(p.actBytes), Int64(p.ntok),
            Int64(cols), Int64(p.rows))
        }
      }
      #expect(y == y1, "\(type) matvec on \(threads) threads")
      #expect(Y == Y1, "\(type) matmul on \(threads) threads")
    }
  }
}
