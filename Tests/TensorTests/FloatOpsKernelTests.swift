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
