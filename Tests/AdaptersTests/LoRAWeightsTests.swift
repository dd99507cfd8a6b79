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
}

/// Values as the F16 serving copy holds them (round to nearest even, as lk_quantize_row does).
func f16(_ v: [Float]) -> [Float] { v.map { Float(Float16($0)) } }
