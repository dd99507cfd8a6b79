import CKernels
import Testing

/// lk_argmax and lk_first_above on every ISA against plain Swift scans: ties (the first wins),
/// NaNs (never the largest; in x[0] the scan answers 0), signed zeros, every length around the
/// vector widths, and a vocabulary-sized row.
extension KernelISATests {
  static func plainArgmax(_ x: [Float]) -> Int {
    var best = 0
    for i in 1..<x.count where x[i] > x[best] { best = i }
    return best
  }

  static func plainFirstAbove(_ x: [Float], _ i: Int, _ thr: Float) -> Int {
    var j = i
    while j < x.count && x[j] <= thr { j += 1 }
    return j
  }

  @Test func argmaxAndFirstAboveMatchPlainScans() {
    var rng = SeededRNG(seed: 0xA4)
    var rows: [[Float]] = []
    for n in [1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 100, 49152] {
      // few distinct values, so that ties are common
      rows.append((0..<n).map { _ in Float(Int(rng.next() % 9)) - 4 })
      var r = rng.floats(n, sigma: 3)
      if n > 3 {
        r[Int(rng.next() % UInt64(n))] = .nan
        r[Int(rng.next() % UInt64(n))] = .nan
      }
      rows.append(r)
    }
    rows.append([.nan, 1, 2, 3])
    rows.append([1, .nan, 5, .nan, 5, 2] + [Float](repeating: -1, count: 40))
    rows.append([-0.0, 0.0, -1] + [Float](repeating: -0.0, count: 20))
    rows.append([Float](repeating: -.infinity, count: 37))
    rows.append([Float](repeating: .nan, count: 18))
    forEachISA { isa in
      let name = isaNames[Int(isa)]
      for x in rows {
        #expect(Int(lk_argmax(x, Int64(x.count))) == Self.plainArgmax(x), "argmax \(name) n \(x.count)")
        for (i, thr) in [(0, Float(0)), (3, 1.5), (x.count / 2, -2), (x.count, 0), (1, .infinity), (0, -.infinity)]
        where i <= x.count {
          #expect(
            Int(lk_first_above(x, Int64(i), Int64(x.count), thr)) == Self.plainFirstAbove(x, i, thr),
            "first above \(name) n \(x.count) from \(i) thr \(thr)")
        }
      }
    }
  }
}
