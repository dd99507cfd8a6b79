import CKernels
import Testing

/// Batching must not change results: lk_matmul's output for a token is bit-identical to lk_matvec
/// on that activation row alone, whatever the other tokens of the batch, their number and the row
/// range (or thread split) computed. With 8-bit activations the model is chaotic — a last-bit
/// difference in one product grows into different greedy tokens over 30 layers — and lorad promises
/// that a sequence decoded in a batch gets exactly the tokens it gets alone.
extension KernelISATests {
  /// The first position where got and want differ as bit patterns (so -0 vs +0 counts), as a
  /// message naming the row and both values; nil when they are identical.
  static func difference(_ got: ArraySlice<Float>, _ want: ArraySlice<Float>, firstRow: Int = 0) -> String? {
    for (i, (g, w)) in zip(got, want).enumerated() where g.bitPattern != w.bitPattern {
      let hex = { (v: Float) in "0x" + String(v.bitPattern, radix: 16) }
      return "row \(firstRow + i): \(g) (\(hex(g))) vs \(w) (\(hex(w)))"
    }
    return got.count == want.count ? nil : "\(got.count) results vs \(want.count)"
  }

  /// Token counts of a batch: 1, the VNNI token-group tails (2, 3, 5), the smallest and a partial
  /// AMX tile (6, 11), a whole 16-token step, and past 16: a 5-token tail (21) and last groups
  /// of 8 and 15 tokens (24, 31).
  static let batchSizes = [1, 2, 3, 4, 5, 6, 8, 9, 11, 16, 21, 24, 31]
  /// Row ranges: whole, split at a non-tile boundary, inside, tile-aligned, a single last row, and
  /// ranges long enough for the AVX-512 matvec's switch from 4-row to 16-row tiles after 64 rows
  /// (with a partial last tile).
  static let rowRanges: [Range<Int>] = [0..<153, 0..<13, 13..<153, 5..<150, 16..<48, 152..<153, 70..<153, 0..<100]

  /// y (rows) = lk_matvec of token t alone over all rows.
  static func matvec(_ p: Problem, token t: Int) -> [Float] {
    var y = [Float](repeating: .nan, count: p.rows)
    p.w.withUnsafeBytes { w in
      p.xq.withUnsafeBytes { x in
        lk_matvec(p.type.code, &y, w.baseAddress!, x.baseAddress! + t * p.actBytes, Int64(p.cols), 0, Int64(p.rows))
      }
    }
    return y
  }

  @Test(arguments: KType.weights)
  func matmulEqualsMatvecBitForBit(_ type: KType) {
    let cols = type.blockElems == 256 ? 512 : 576
    // 40 distinct activation rows; each batch is a window of them, so a token meets different
    // neighbours (and sits at different positions in its token group) from batch to batch.
    let p = Problem(type, rows: 153, cols: cols, ntok: 40, seed: 0xE0 + UInt64(type.code))
    forEachISA { isa in
      let alone = (0..<p.ntok).map { Self.matvec(p, token: $0) }
      for n in Self.batchSizes {
        for first in Set([0, 7, p.ntok - n]) {
          for range in Self.rowRanges {
            let ldy = p.rows + 2
            var Y = [Float](repeating: -7, count: n * ldy)
            p.w.withUnsafeBytes { w in
              p.xq.withUnsafeBytes { x in
                lk_matmul(
                  type.code, &Y, Int64(ldy), w.baseAddress!, x.baseAddress! + first * p.actBytes, Int64(p.actBytes),
                  Int64(n), Int64(cols), Int64(range.lowerBound), Int64(range.upperBound))
              }
            }
            for t in 0..<n {
              let diff = Self.difference(
                Y[t * ldy + range.lowerBound..<t * ldy + range.upperBound], alone[first + t][range],
                firstRow: range.lowerBound)
              #expect(
                diff == nil,
                "\(type) \(isaNames[Int(isa)]): token \(first + t) in a batch of \(n) from \(first), rows \(range): \(diff ?? "")"
              )
              let outside = Y[t * ldy..<t * ldy + range.lowerBound] + Y[t * ldy + range.upperBound..<(t + 1) * ldy]
              #expect(outside.allSatisfy { $0 == -7 }, "\(type) \(isaNames[Int(isa)]): rows outside \(range) written")
            }
          }
        }
      }
    }
  }

  /// Rows longer than one column chunk (AVX-512: 64 blocks, AVX2: 128) add the chunks' results in
  /// the same order in both kernels; 70 tokens of 2048 columns take two of the AVX-512 matmul's
  /// token chunks (64 tokens of 64 blocks each); 800 columns are an odd number of blocks (25).
  @Test(arguments: [KType.q4_0, .q4_1, .q8_0], [(cols: 9600, ntok: 9), (cols: 2048, ntok: 70), (cols: 800, ntok: 19)])
  func matmulEqualsMatvecOnLongRows(_ type: KType, _ size: (cols: Int, ntok: Int)) {
    let p = Problem(type, rows: 85, cols: size.cols, ntok: size.ntok, seed: 0xE8 + UInt64(type.code))
    forEachISA { isa in
      var Y = [Float](repeating: .nan, count: p.ntok * p.rows)
      p.w.withUnsafeBytes { w in
        p.xq.withUnsafeBytes { x in
          lk_matmul(
            type.code, &Y, Int64(p.rows), w.baseAddress!, x.baseAddress!, Int64(p.actBytes), Int64(p.ntok),
            Int64(p.cols), 0, Int64(p.rows))
        }
      }
      for t in 0..<p.ntok {
        let diff = Self.difference(Y[t * p.rows..<(t + 1) * p.rows], Self.matvec(p, token: t)[...])
        #expect(diff == nil, "\(type) \(isaNames[Int(isa)]) \(p.cols) columns: token \(t): \(diff ?? "")")
      }
    }
  }

  /// The threaded fronts split rows across threads; a token's results stay those of lk_matvec.
  @Test(arguments: [KType.q4_1, .q8_0, .q4_0])
  func threadedMatmulEqualsMatvecBitForBit(_ type: KType) {
    let p = Problem(type, rows: 200, cols: 576, ntok: 16, seed: 0xF0 + UInt64(type.code))
    forEachISA { isa in
      let alone = (0..<p.ntok).map { Self.matvec(p, token: $0) }
      for threads in [2, 3] {
        let pool = lk_pool_create(Int32(threads))
        defer { lk_pool_destroy(pool) }
        var Y = [Float](repeating: .nan, count: p.ntok * p.rows)
        var y = [Float](repeating: .nan, count: p.rows)
        p.w.withUnsafeBytes { w in
          p.xq.withUnsafeBytes { x in
            lk_matmul_mt(
              pool, type.code, &Y, Int64(p.rows), w.baseAddress!, x.baseAddress!, Int64(p.actBytes), Int64(p.ntok),
              Int64(p.cols), Int64(p.rows))
            lk_matvec_mt(
              pool, type.code, &y, w.baseAddress!, x.baseAddress! + 5 * p.actBytes, Int64(p.cols), Int64(p.rows))
          }
        }
        for t in 0..<p.ntok {
          let diff = Self.difference(Y[t * p.rows..<(t + 1) * p.rows], alone[t][...])
          #expect(diff == nil, "\(type) \(isaNames[Int(isa)]) on \(threads) threads: token \(t): \(diff ?? "")")
        }
        let diff = Self.difference(y[...], alone[5][...])
        #expect(diff == nil, "\(type) \(isaNames[Int(isa)]) matvec on \(threads) threads: \(diff ?? "")")
      }
    }
  }

  /// The products reading a prepacked copy give exactly lk_matvec's results: AVX-512 VNNI token
  /// groups of 8, 4, 2 and 1 over the records in place; AMX whole and partial 16-token groups, a
  /// tail of 2 tokens too few for tiles (18), chunks past AMX_FUSED_MAX that pack each tile once
  /// (70: four groups of 16 and one of 6); rows of more than one column chunk (72 blocks), row
  /// ranges that start on a tile (the copy is read) or not (W is read); on AVX2 and scalar the
  /// copy is ignored. Where the CPU has no AVX-512 there is no copy to test.
  @Test(arguments: [KType.q4_1, .q8_0, .q4_0], [576, 2304])
  func prepackedMatmulEqualsMatvecBitForBit(_ type: KType, cols: Int) {
    let p = Problem(type, rows: 160, cols: cols, ntok: 70, seed: 0xF8 + UInt64(type.code) + UInt64(cols))
    let bytes = Int(lk_prepack_bytes(type.code, Int64(p.rows), Int64(p.cols)))
    guard lk_cpu_isa() >= Int32(LK_ISA_AVX512) else {
      #expect(bytes == 0)
      return
    }
    #expect(bytes == p.rows / 16 * p.cols / 32 * (type.code == KType.q8_0.code ? 576 : 320))
    let pre = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    defer { pre.deallocate() }
    p.w.withUnsafeBytes { lk_prepack_rows(type.code, $0.baseAddress!, Int64(p.rows), Int64(p.cols), pre) }
    forEachISA { isa in
      let alone = (0..<p.ntok).map { Self.matvec(p, token: $0) }
      for n in [1, 4, 6, 8, 9, 11, 16, 18, 21, 40, 70] {  // AMX: 8 token lanes up to 8 tokens, 16 above
        for rows in [0..<160, 16..<48, 5..<150] {
          var Y = [Float](repeating: .nan, count: n * p.rows)
          p.w.withUnsafeBytes { w in
            p.xq.withUnsafeBytes { x in
              lk_matmul_pre(
                type.code, &Y, Int64(p.rows), w.baseAddress!, pre, x.baseAddress!, Int64(p.actBytes), Int64(n),
                Int64(p.cols), Int64(rows.lowerBound), Int64(rows.upperBound))
            }
          }
          for t in 0..<n {
            let diff = Self.difference(Y[t * p.rows + rows.lowerBound..<t * p.rows + rows.upperBound], alone[t][rows])
            #expect(diff == nil, "\(type) \(isaNames[Int(isa)]) \(n) tokens rows \(rows): token \(t): \(diff ?? "")")
          }
        }
      }
    }
  }
}
