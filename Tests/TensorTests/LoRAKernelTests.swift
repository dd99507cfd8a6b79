import CKernels
import Foundation
import Testing

/// LoRA shrink / expand: every ISA path against a Double reference, F16 and F32 factors.
extension KernelISATests {
  @Test(arguments: [Int32(LK_F32), Int32(LK_F16)], [1, 3, 6])
  func loraShrinkAndExpandMatchReference(_ type: Int32, _ ntok: Int) {
    let rank = 5, cols = 75, rows = 83  // odd sizes: every SIMD tail
    var g = SeededRNG(seed: 0x10A + UInt64(type) * 7 + UInt64(ntok))
    func r(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Int(g.next() % 2001) - 1000) / 1000 } }
    // Factor values exactly representable in F16, so both types hold the same numbers.
    let a = r(rank * cols).map { Float(Float16($0)) }, bt = r(rank * rows).map { Float(Float16($0)) }
    func stored(_ v: [Float]) -> [UInt8] {
      type == Int32(LK_F16)
        ? v.flatMap { withUnsafeBytes(of: Float16($0).bitPattern.littleEndian, Array.init) }
        : v.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
    }
    let aBytes = stored(a), btBytes = stored(bt)
    let ldx = cols + 3, ldt = rank + 1, ldy = rows + 2
    let x = r(ntok * ldx), y0 = r(ntok * ldy)
    let scale: Float = 0.7, c0 = 7, c1 = 80
    var tRef = [Double](repeating: 0, count: ntok * rank)
    for i in 0..<ntok {
      for k in 0..<rank {
        tRef[i * rank + k] = (0..<cols).reduce(0.0) { $0 + Double(a[k * cols + $1]) * Double(x[i * ldx + $1]) }
      }
    }
    forEachISA { isa in
      var t = [Float](repeating: .nan, count: ntok * ldt)
      lk_lora_shrink(&t, Int64(ldt), x, Int64(ldx), Int64(ntok), type, aBytes, Int64(rank), Int64(cols))
      var worst = 0.0
      for i in 0..<ntok { for k in 0..<rank { worst = max(worst, abs(Double(t[i * ldt + k]) - tRef[i * rank + k])) } }
      #expect(worst < 1e-4, "shrink isa \(isa): \(worst)")
      var y = y0
      lk_lora_expand(
        &y, Int64(ldy), t, Int64(ldt), Int64(ntok), type, btBytes, Int64(rank), Int64(rows), Int64(c0), Int64(c1), scale
      )
      var worstY = 0.0
      for i in 0..<ntok {
        for c in 0..<ldy {
          var want = Double(y0[i * ldy + c])
          if c >= c0 && c < c1 && c < rows {
            want += Double(scale) * (0..<rank).reduce(0.0) { $0 + Double(t[i * ldt + $1]) * Double(bt[$1 * rows + c]) }
          }
          worstY = max(worstY, abs(Double(y[i * ldy + c]) - want))
        }
      }
      #expect(worstY < 1e-4, "expand isa \(isa): \(worstY)")
    }
  }
}

extension KernelISATests {
  /// Q8 B (lk_lora_pack_b_q8) and its expand: every ISA bit for bit the same (integer dots, then
  /// one FMA per output), within the quantization of t of a Double reference over the unpacked B
  /// (lk_lora_unpack_b_q8), which is itself within B's own quantization of B.
  @Test(arguments: [1, 2, 3, 6], [5, 16])
  func loraQ8ExpandMatchesReferenceOnEveryISA(_ ntok: Int, _ rank: Int) {
    let rows = 256, ldt = rank + 2, ldy = rows + 3
    var g = SeededRNG(seed: 0x0E8 + UInt64(ntok) + UInt64(rank) << 8)
    func r(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Int(g.next() % 2001) - 1000) / 1000 } }
    let b = r(rows * rank)  // (rows, rank) row-major, as the learner holds B
    var packed = [UInt8](repeating: 0, count: Int(lk_lora_b_q8_bytes(Int64(rows), Int64(rank))))
    lk_lora_pack_b_q8(b, Int64(rows), Int64(rank), &packed)
    var bq = [Float](repeating: .nan, count: rows * rank)
    lk_lora_unpack_b_q8(packed, Int64(rows), Int64(rank), &bq)
    for c in 0..<rows {  // each row quantized on its own: half a step, and the scale's rounding to a half
      let amax = (0..<rank).map { abs(b[c * rank + $0]) }.max()!
      for k in 0..<rank { #expect(abs(bq[c * rank + k] - b[c * rank + k]) <= amax * (1 / 254 + 1 / 2048) + 1e-6) }
    }
    let t = r(ntok * ldt), y0 = r(ntok * ldy), scale: Float = 0.7, c0 = 32, c1 = 224
    var first: [Float]? = nil
    forEachISA { isa in
      var y = y0
      lk_lora_expand_q8(
        &y, Int64(ldy), t, Int64(ldt), Int64(ntok), packed, Int64(rank), Int64(rows), Int64(c0), Int64(c1), scale)
      for i in 0..<ntok {
        let tmax = (0..<rank).map { Double(abs(t[i * ldt + $0])) }.max()!
        for c in 0..<ldy {
          var want = Double(y0[i * ldy + c])
          var bound = 1e-6
          if c >= c0 && c < c1 {
            want += Double(scale) * (0..<rank).reduce(0.0) { $0 + Double(t[i * ldt + $1]) * Double(bq[c * rank + $1]) }
            // t's rounding: half a step (tmax / 254) on each of rank terms
            bound += Double(scale) * tmax / 254 * (0..<rank).reduce(0.0) { $0 + abs(Double(bq[c * rank + $1])) } + 1e-5
          }
          let got = Double(y[i * ldy + c])
          #expect(abs(got - want) <= bound, "q8 expand isa \(isa) token \(i) column \(c): \(got) vs \(want)")
        }
      }
      if let f = first { #expect(y == f, "q8 expand isa \(isa) differs from the scalar one") } else { first = y }
    }
  }
}

extension KernelISATests {
  /// A prepacked (lk_lora_pack_a_q8) gives the shrink bit for bit as the Q8_0 rows do, on every
  /// ISA, for 1 to 9 rows (groups of 4 and single rows): ranks with partial 16-row tiles, and
  /// more than 2048 columns (two column chunks). Unpacking gives the rows back exactly.
  @Test(arguments: [1, 8, 16, 20, 32], [64, 576, 2112])
  func loraPackedShrinkEqualsRowShrink(_ rank: Int, _ cols: Int) {
    let packedBytes = Int(lk_lora_a_q8_packed_bytes(Int64(rank), Int64(cols)))
    guard packedBytes > 0 else { return }  // no AVX-512 here: nothing is packed
    var g = SeededRNG(seed: 0xA9 + UInt64(rank) << 16 + UInt64(cols))
    func r(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Int(g.next() % 2001) - 1000) / 997 } }
    let rowBytes = Int(lk_row_bytes(Int32(LK_Q8_0), Int64(cols)))
    var a = [UInt8](repeating: 0, count: rank * rowBytes)
    let af = r(rank * cols)
    for k in 0..<rank {
      lk_quantize_row(Int32(LK_Q8_0), Array(af[k * cols..<(k + 1) * cols]), &a[k * rowBytes], Int64(cols))
    }
    let ntok = 9, ldt = rank + 3
    var xq = [UInt8](repeating: 0, count: ntok * rowBytes)
    for i in 0..<ntok { lk_quantize_act(Int32(LK_Q8_0), r(cols), &xq[i * rowBytes], Int64(cols)) }
    var packed = [UInt8](repeating: 0, count: packedBytes + 64)
    packed.withUnsafeMutableBytes { buf in
      let p = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: buf.baseAddress!) + 63) & ~63)!
      lk_lora_pack_a_q8(a, Int64(rank), Int64(cols), p)
      var back = [UInt8](repeating: 0, count: a.count)
      lk_lora_unpack_a_q8(p, Int64(rank), Int64(cols), &back)
      #expect(back == a, "unpacked rows differ, rank \(rank), cols \(cols)")
      for n in [1, 4, 5, ntok] {
        var want = [Float](repeating: .nan, count: n * ldt)
        lk_lora_shrink_q8(&want, Int64(ldt), xq, Int64(rowBytes), Int64(n), a, Int64(rank), Int64(cols))
        forEachISA { isa in
          var got = [Float](repeating: .nan, count: n * ldt)
          lk_lora_shrink_q8_packed(&got, Int64(ldt), xq, Int64(rowBytes), Int64(n), p, Int64(rank), Int64(cols))
          for i in 0..<n {
            #expect(
              Array(got[i * ldt..<i * ldt + rank]) == Array(want[i * ldt..<i * ldt + rank]),
              "packed shrink isa \(isa), rank \(rank), cols \(cols), \(n) rows: row \(i)")
          }
        }
      }
    }
  }
}

extension KernelISATests {
  /// t quantized by the expand: values that land exactly on halves (amax 127: a step of 1) round
  /// away from zero alike on every ISA, ranks with and without a partial vector.
  @Test(arguments: [5, 16, 20])
  func loraQ8ExpandRoundsTiesAlikeOnEveryISA(_ rank: Int) {
    let rows = 32
    var g = SeededRNG(seed: 0x71E5 + UInt64(rank))
    let b = (0..<rows * rank).map { _ in Float(Int(g.next() % 2001) - 1000) / 1000 }
    var packed = [UInt8](repeating: 0, count: Int(lk_lora_b_q8_bytes(Int64(rows), Int64(rank))))
    lk_lora_pack_b_q8(b, Int64(rows), Int64(rank), &packed)
    let ties: [Float] = [0.5, -0.5, 1.5, -2.5, 126.5, -126.5, 3.4999998, -3.5000002]
    let t = (0..<rank).map { $0 == 0 ? Float(127) : ties[$0 % ties.count] }
    var first: [Float]? = nil
    forEachISA { isa in
      var y = [Float](repeating: 0.25, count: rows)
      lk_lora_expand_q8(&y, Int64(rows), t, Int64(rank), 1, packed, Int64(rank), Int64(rows), 0, Int64(rows), 0.7)
      if let f = first { #expect(y == f, "isa \(isa) rounds t unlike the scalar expand") } else { first = y }
    }
  }
}
