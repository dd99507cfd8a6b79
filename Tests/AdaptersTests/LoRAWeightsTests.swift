import CKernels
import Model
import Testing

@testable import Adapters

@Suite struct LoRAWeightsTests {
  @Test func targetsOrderByLayerThenModule() {
    let ts = [
      LoRATarget(layer: 1, module: .q), LoRATarget(layer: 0, module: .down), LoRATarget(layer: 0, module: .q),
    ]
    #expect(
      ts.sorted() == [
        LoRATarget(layer: 0, module: .q), LoRATarget(layer: 0, module: .down), LoRATarget(layer: 1, module: .q),
      ])
  }

  @Test func weightsReportModulesRankAndBytes() {
    let p = LoRAPair(
      rank: 2, rows: 3, cols: 4, scale: 0.5, a: Array(repeating: 1, count: 8), b: Array(repeating: 0, count: 6))
    let w = LoRAWeights(name: "x", pairs: [LoRATarget(layer: 0, module: .v): p, LoRATarget(layer: 2, module: .q): p])
    #expect(w.modules == [.q, .v])
    #expect(w.maxRank == 2)
    #expect(w.bytes == 2 * 14 * 4)
    #expect(LoRAModule.o.ggufName == "attn_output" && LoRAModule.down.rawValue == "down_proj")
  }

  /// The Q8 serving copy of B (packed by one kernel, straight from B) holds, for every row of
  /// B, its rank values quantized on their own: a reference built here row by row (scale
  /// amax / 127 rounded to a half, values rounded half away from zero), then dequantized.
  @Test func q8ServingCopyOfBHoldsEachRowQuantizedAlone() {
    let rows = 96, rank = 3, cols = 64
    var seed: UInt64 = 7
    func next() -> Float {
      seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 997
    }
    let b = (0..<(rows * rank)).map { _ in next() }
    let a = (0..<(rank * cols)).map { _ in next() }
    let w = LoRAWeights(
      name: "p",
      pairs: [LoRATarget(layer: 0, module: .gate): LoRAPair(rank: rank, rows: rows, cols: cols, scale: 1, a: a, b: b)])
    let served = ResidentAdapter(w, layers: 1, type: .q8_0).weights.pairs[LoRATarget(layer: 0, module: .gate)]!
    var expected = [Float](repeating: .nan, count: rows * rank)
    for r in 0..<rows {
      let row = b[r * rank..<(r + 1) * rank]
      let d = row.map { abs($0) }.max()! / 127
      let id: Float = d != 0 ? 1 / d : 0
      let e = Float(Float16(d))
      for k in 0..<rank {
        let v = b[r * rank + k] * id
        expected[r * rank + k] = e * v.rounded(.toNearestOrAwayFromZero)
      }
    }
    #expect(served.b == expected)
    #expect(zip(served.b, b).allSatisfy { abs($0 - $1) <= 1.0 / 127 })  // and close to B itself
  }
}

/// Values as the F16 serving copy holds them (round to nearest even, as lk_quantize_row does).
func f16(_ v: [Float]) -> [Float] { v.map { Float(Float16($0)) } }
