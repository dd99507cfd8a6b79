import CKernels
import Foundation

/// The row-wise ops of the training pass — RMSNorm, SwiGLU, RoPE — each forward next to its backward.
extension LoRATrainingContext {
  /// Runs `body(i)` for i in 0..<n, split across the pool in contiguous ranges.
  @inline(__always) func each(_ n: Int, _ body: (Int) -> Void) {
    pool.parallelFor(n) { r in for i in r { body(i) } }
  }

  // MARK: RMSNorm

  /// out[i] = x[i] · rstd[i] · w, rstd[i] = 1/√(mean(x[i]²) + eps), for n rows of dim (the
  /// serving forward's arithmetic: the same dot for the sum of squares, x·rstd then ·w).
  /// rows[i] (when given) picks the input row of output row i.
  func rmsnormForward(
    _ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
    _ w: UnsafePointer<Float>, n: Int, rows: UnsafePointer<Int>? = nil
  ) {
    let dim = config.dim, eps = config.normEps
    each(n) { i in
      let xi = x + (rows?[i] ?? i) * dim, oi = out + i * dim
      let r = 1 / (lk_dot_f32(xi, xi, Int64(dim)) / Float(dim) + eps).squareRoot()
      rstd[i] = r
      for j in 0..<dim { oi[j] = xi[j] * r * w[j] }
    }
  }

  /// dx[i] += rstd · (g − x̂ · mean(g ⊙ x̂)) with g = dout[i] ⊙ w and x̂ = x[i] · rstd: the
  /// backward of `rmsnormForward` (rows[i] picks the input row, and so the dx row, of row i).
  func rmsnormBackward(
    _ dx: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
    _ rstd: UnsafePointer<Float>, _ w: UnsafePointer<Float>, n: Int, rows: UnsafePointer<Int>? = nil
  ) {
    let dim = config.dim
    each(n) { i in
      let row = rows?[i] ?? i
      let xi = x + row * dim, gi = dout + i * dim, di = dx + row * dim
      let r = rstd[i]
      var dot: Float = 0
      for j in 0..<dim { dot += gi[j] * w[j] * xi[j] }
      let c = dot * r * r / Float(dim)  // mean(g ⊙ x̂) · rstd, folded: x̂ = x · rstd
      for j in 0..<dim { di[j] += r * (gi[j] * w[j] - xi[j] * c) }
    }
  }

  // MARK: SwiGLU

  /// h = silu(gate) ⊙ up over n rows of ffnDim.
  func swigluForward(
    _ h: UnsafeMutablePointer<Float>, _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, n: Int
  ) {
    let f = config.ffnDim
    each(n) { i in lk_swiglu(h + i * f, gate + i * f, up + i * f, Int64(f)) }
  }

  /// dGate += dh ⊙ up ⊙ silu'(gate), dUp += dh ⊙ silu(gate), silu'(g) = σ(g)(1 + g(1 − σ(g))).
  func swigluBackward(
    _ dGate: UnsafeMutablePointer<Float>, _ dUp: UnsafeMutablePointer<Float>, _ dh: UnsafePointer<Float>,
    _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, n: Int
  ) {
    let f = config.ffnDim
    each(n) { i in
      let o = i * f
      for j in 0..<f {
        let g = gate[o + j], sig = 1 / (1 + expf(-g))
        dUp[o + j] += dh[o + j] * g * sig
        dGate[o + j] += dh[o + j] * up[o + j] * sig * (1 + g * (1 - sig))
      }
    }
  }

  // MARK: RoPE

  /// Each row's cos and sin of its position in its own sequence (angles as the serving forward).
  func ropeAngles() {
    let half = config.ropeDim / 2
    for (s, r0) in seqRow.enumerated() {
      for p in 0..<seqLen[s] {
        let i = r0 + p
        for j in 0..<half {
          let a = Float(p) * invFreq[j]
          ropeCos[i * half + j] = cos(a)
          ropeSin[i * half + j] = sin(a)
        }
      }
    }
  }

  /// Rotates the first ropeDim dimensions of each head of n rows (width heads · headDim) by
  /// each row's angles: pairs (2j, 2j+1) (Llama) or (j, j + ropeDim/2) (NeoX), as the serving
  /// forward. `inverse` rotates back by the negated angle: the backward, Rᵀ = R(−θ).
  func rope(_ x: UnsafeMutablePointer<Float>, heads: Int, n: Int, inverse: Bool = false) {
    let c = config
    let half = c.ropeDim / 2, hd = c.headDim, width = heads * hd
    let neox = c.ropeStyle == .neox
    let sign: Float = inverse ? -1 : 1
    let rc = ropeCos, rs = ropeSin
    each(n) { i in
      let cs = rc + i * half, sn = rs + i * half
      for h in 0..<heads {
        let p = x + i * width + h * hd
        for j in 0..<half {
          let (ia, ib) = neox ? (j, j + half) : (2 * j, 2 * j + 1)
          let a = p[ia], b = p[ib], s = sign * sn[j]
          p[ia] = a * cs[j] - b * s
          p[ib] = a * s + b * cs[j]
        }
      }
    }
  }
}
