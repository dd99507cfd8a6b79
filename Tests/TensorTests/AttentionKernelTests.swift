import CKernels
import Foundation
import Testing

/// Decode attention of one head: every ISA path against a Double reference. Pins the ISA, so it
/// lives in the serialized KernelISATests suite.
extension KernelISATests {
  /// Plain Swift, in Double: the reference the kernel's every ISA path must meet.
  private func reference(
    _ q: [Float], _ k: [Float], _ v: [Float], ld: Int, len: Int, hd: Int, scale: Float
  ) -> [Float] {
    var s = (0..<len).map { t in
      (0..<hd).reduce(0.0) { $0 + Double(q[$1]) * Double(k[t * ld + $1]) } * Double(scale)
    }
    let mx = s.max()!
    s = s.map { exp($0 - mx) }
    let sum = s.reduce(0, +)
    return (0..<hd).map { i in
      Float((0..<len).reduce(0.0) { $0 + s[$1] / sum * Double(v[$1 * ld + i]) })
    }
  }

  func attentionReference(
    _ q: [Float], _ k: [Float], _ v: [Float], ld: Int, len: Int, hd: Int, scale: Float
  ) -> [Float] {
    reference(q, k, v, ld: ld, len: len, hd: hd, scale: scale)
  }

  /// Each kernel (float cache, and the F16 cache's against the halves' values, what that cache
  /// holds) against the reference, on every ISA path.
  @Test(arguments: [1, 7, 16, 33, 300], [false, true])
  func attentionHeadMatchesReference(_ len: Int, _ halves: Bool) {
    forEachISA { isa in
      for hd in [64, 128, 24] {
        let ld = hd * 3 + 8
        var g = SystemRandomNumberGenerator()
        let q = (0..<hd).map { _ in Float.random(in: -1...1, using: &g) }
        var k = (0..<(len * ld)).map { _ in Float.random(in: -1...1, using: &g) }
        var v = (0..<(len * ld)).map { _ in Float.random(in: -1...1, using: &g) }
        var kh = [UInt16](repeating: 0, count: len * ld), vh = kh
        if halves {  // the floats become the halves' values
          lk_quantize_row(Int32(LK_F16), k, &kh, Int64(k.count))
          lk_quantize_row(Int32(LK_F16), v, &vh, Int64(v.count))
          lk_dequantize_row(Int32(LK_F16), kh, &k, Int64(k.count))
          lk_dequantize_row(Int32(LK_F16), vh, &v, Int64(v.count))
        }
        var out = [Float](repeating: .nan, count: hd)
        var scratch = [Float](repeating: 0, count: len)
        if halves {
          lk_attention_head_f16(&out, q, kh, vh, Int64(ld), Int64(len), Int64(hd), 0.3, &scratch)
        } else {
          lk_attention_head(&out, q, k, v, Int64(ld), Int64(len), Int64(hd), 0.3, &scratch)
        }
        let want = attentionReference(q, k, v, ld: ld, len: len, hd: hd, scale: 0.3)
        let err = zip(out, want).map { abs($0 - $1) }.max()!
        #expect(err < 1e-5, "isa \(isa), hd \(hd), len \(len), halves \(halves): \(err)")
      }
    }
  }
}
