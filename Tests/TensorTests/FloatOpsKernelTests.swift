import CKernels
import Foundation
import Testing

/// RMS norm, SwiGLU, dot and axpy on every ISA against plain Swift loops in Double.
extension KernelISATests {
  @Test(arguments: [576, 1003, 7])
  func floatOpsMatchPlainLoops(n: Int) {
    var rng = SeededRNG(seed: UInt64(n))
    let x = rng.floats(n, sigma: 2), w = rng.floats(n), g = rng.floats(n, sigma: 4), u = rng.floats(n)
    // rmsnorm
    let eps: Float = 1e-5
    let ms = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)
    let scale = 1 / (ms + Double(eps)).squareRoot()
    let norm = (0..<n).map { Double(x[$0]) * scale * Double(w[$0]) }
    // swiglu
    let swiglu = (0..<n).map { i -> Double in
      let gi = Double(g[i])
      return gi / (1 + exp(-gi)) * Double(u[i])
    }
    let dot = (0..<n).reduce(0.0) { $0 + Double(x[$1]) * Double(w[$1]) }
    let dotMag = (0..<n).reduce(0.0) { $0 + abs(Double(x[$1]) * Double(w[$1])) }
    forEachISA { isa in
      let name = isaNames[Int(isa)]
      var out = [Float](repeating: .nan, count: n)
      lk_rmsnorm(&out, x, w, Int64(n), eps)
      for i in 0..<n { #expect(abs(Double(out[i]) - norm[i]) <= 1e-5 * abs(norm[i]) + 1e-6, "rmsnorm \(name) [\(i)]") }
      lk_swiglu(&out, g, u, Int64(n))
      for i in 0..<n {
        #expect(abs(Double(out[i]) - swiglu[i]) <= 2e-6 * abs(swiglu[i]) + 1e-6, "swiglu \(name) [\(i)]")
      }
      let d = lk_dot_f32(x, w, Int64(n))
      #expect(abs(Double(d) - dot) <= 1e-6 * dotMag + 1e-6, "dot \(name)")
      var y = u
      lk_axpy_f32(&y, 0.75, x, Int64(n))
      for i in 0..<n {
        #expect(
          abs(Double(y[i]) - (Double(u[i]) + 0.75 * Double(x[i]))) <= 1e-6 * (abs(Double(u[i])) + abs(Double(x[i]))),
          "axpy \(name)")
      }
    }
  }

  @Test func swigluSaturatesWithoutNaN() {
    let g: [Float] = [-200, -90, -88, 0, 88, 90, 200, -0.0]
    let u = [Float](repeating: 2, count: g.count)
    forEachISA { isa in
      var out = [Float](repeating: .nan, count: g.count)
      lk_swiglu(&out, g, u, Int64(g.count))
      #expect(out.allSatisfy { $0.isFinite }, "\(isaNames[Int(isa)]): \(out)")
      #expect(abs(out[4] - 176) < 1e-3 && abs(out[6] - 400) < 1e-3 && abs(out[0]) < 1e-30)
    }
  }
}

/// log Σ exp on every ISA against Double: vocabulary-sized rows (the AVX2 build runs the running
/// maxima and sums 8 wide, the AVX-512 one 16), lengths either side of where those start (2 x 8,
/// 2 x 16), and the maximum at the very end (in the scalar tail when n is not a multiple of 8).
extension KernelISATests {
  @Test(arguments: [49152, 1003, 33, 31, 17, 15, 7])
  func logSumExpMatchesDouble(n: Int) {
    var rng = SeededRNG(seed: 0x15E + UInt64(n))
    var x = rng.floats(n, sigma: 4)
    if n > 16 { x[n - 1] = 40 }
    let mx = Double(x.max()!)
    let want = mx + log(x.reduce(0.0) { $0 + exp(Double($1) - mx) })
    forEachISA { isa in
      let got = Double(lk_logsumexp(x, Int64(n)))
      #expect(abs(got - want) <= 2e-6 * abs(want) + 1e-6, "logsumexp \(isaNames[Int(isa)]) n \(n): \(got) vs \(want)")
    }
  }
}
