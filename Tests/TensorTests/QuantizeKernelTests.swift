import CKernels
import Testing

/// Quantization: rows round-trip within each format's error bound; activation quantization
/// gives the same bytes on every ISA and rounds halves away from zero like ggml.
extension KernelISATests {
  /// Largest |x - dequant(quant(x))| allowed for the block of x starting at `i` in `type`.
  static func roundTripBound(_ type: KType, _ block: ArraySlice<Float>) -> Float {
    let amax = block.map(abs).max() ?? 0
    let lo = block.min() ?? 0, hi = block.max() ?? 0
    switch type.code {
    case KType.q8_0.code, KType.q8_1.code: return 0.57 * amax / 127 + 1e-7  // half a step, f16 scale
    case KType.q8_K.code: return 0.5001 * amax / 127 + 1e-7
    case KType.q4_0.code: return 1.01 * amax / 8 + 1e-7  // the far end clamps at +7: one full step
    case KType.q4_1.code: return 0.57 * (hi - lo) / 15 + 1e-3 * max(abs(lo), abs(hi)) + 1e-7
    case KType.f16.code: return amax * 0x1p-11 + 1e-7
    case KType.bf16.code: return amax * 0x1p-8
    default: return .infinity
    }
  }

  @Test(arguments: [KType.q8_0, .q8_1, .q8_K, .q4_0, .q4_1, .f16, .bf16, .q4_K, .q6_K, .f32])
  func quantizeRowRoundTrips(_ type: KType) {
    var rng = SeededRNG(seed: 0x51 + UInt64(type.code))
    let n = 4 * 256
    var x = rng.floats(n)
    x[5] = 0  // a zero and a constant block must survive too
    for i in 256..<288 { x[i] = 0.25 }
    var q = [UInt8](repeating: 0, count: type.rowBytes(n))
    lk_quantize_row(type.code, x, &q, Int64(n))
    var y = [Float](repeating: .nan, count: n)
    lk_dequantize_row_ref(type.code, q, &y, Int64(n))
    if type.code == KType.q4_K.code || type.code == KType.q6_K.code {
      // K-quants use a plain min/max fit: check the relative RMS error
      let err = zip(x, y).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
      let ref = x.map { $0 * $0 }.reduce(0, +)
      #expect((err / ref).squareRoot() < (type.code == KType.q4_K.code ? 0.12 : 0.03), "\(type)")
      return
    }
    let be = max(type.blockElems, 32)
    for start in stride(from: 0, to: n, by: be) {
      let bound = Self.roundTripBound(type, x[start..<start + be])
      let worst = (start..<start + be).map { abs(x[$0] - y[$0]) }.max()!
      #expect(worst <= bound, "\(type) block at \(start): error \(worst) > \(bound)")
    }
  }

  @Test(arguments: [KType.q4_0, .q4_1, .q8_0, .q4_K])
  func activationQuantizationIsIdenticalOnEveryISA(_ wtype: KType) {
    var rng = SeededRNG(seed: 0xAC + UInt64(wtype.code))
    let n = 1024
    var x = rng.floats(n, sigma: 3)
    for i in 64..<96 { x[i] = 0 }  // an all-zero block
    // blocks whose scales are half subnormals, or overflow a half (the x86 kernels convert
    // with F16C, the scalar one in software)
    for i in 128..<160 { x[i] *= 1e-6 }
    for i in 160..<192 { x[i] *= 3e-4 }
    for i in 192..<224 { x[i] *= 1e7 }
    let bytes = Int(lk_act_row_bytes(wtype.code, Int64(n)))
    var reference: [UInt8]?
    forEachISA { isa in
      var q = [UInt8](repeating: 0xEE, count: bytes)
      lk_quantize_act(wtype.code, x, &q, Int64(n))
      if let r = reference {
        #expect(q == r, "\(wtype) activations differ on \(isaNames[Int(isa)])")
      } else {
        reference = q
      }
    }
  }

  /// The LoRA shrinks reuse the base product's Q8_1 rows as Q8_0 (lk_q8_1_to_q8_0): that must be
  /// byte for byte the Q8_0 row of the same floats, on every ISA.
  @Test func q8_1RowsRearrangeIntoTheQ8_0RowsOfTheSameFloats() {
    var rng = SeededRNG(seed: 0x81)
    let n = 1536
    var x = rng.floats(n, sigma: 2)
    for i in 0..<32 { x[i] = 0 }
    for i in 32..<64 { x[i] *= 1e-6 }
    forEachISA { isa in
      var q81 = [UInt8](repeating: 0xEE, count: Int(lk_act_row_bytes(KType.q4_1.code, Int64(n))))
      var q80 = [UInt8](repeating: 0xEE, count: Int(lk_act_row_bytes(KType.q8_0.code, Int64(n))))
      var got = [UInt8](repeating: 0x11, count: q80.count)
      lk_quantize_act(KType.q4_1.code, x, &q81, Int64(n))
      lk_quantize_act(KType.q8_0.code, x, &q80, Int64(n))
      lk_q8_1_to_q8_0(q81, &got, Int64(n))
      #expect(got == q80, "\(isaNames[Int(isa)])")
    }
  }

  @Test func q8RoundsHalvesAwayFromZero() {
    // amax 127 gives d = 1 exactly, so x * (1/d) lands on the halves
    var x = [Float](repeating: 0, count: 32)
    x[0] = 127
    x[1] = 2.5
    x[2] = -3.5
    x[3] = 0.5
    x[4] = -0.5
    x[5] = 0.49999997
    x[6] = 1.4999999
    forEachISA { isa in
      for act in [KType.q8_0, .q8_1] {
        var q = [UInt8](repeating: 0, count: act.rowBytes(32))
        lk_quantize_act(act.code == KType.q8_0.code ? KType.q8_0.code : KType.q4_1.code, x, &q, 32)
        let off = act.blockBytes - 32
        let qs = q[off..<off + 7].map { Int8(bitPattern: $0) }
        #expect(qs == [127, 3, -4, 1, -1, 0, 1], "\(act) on \(isaNames[Int(isa)])")
        #expect(q[0] == 0x00 && q[1] == 0x3C, "d = 1.0 as f16")
      }
    }
  }
}
