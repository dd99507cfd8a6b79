import Foundation
import TestSupport
import Testing

@testable import Model

/// AdamW against PyTorch's update written out in float64 numpy (`Fixtures/make_adamw_reference.py`),
/// and its state file.
@Suite struct AdamWTests {
  struct Fixture: Decodable {
    struct Settings: Decodable {
      var lr: Float
      var beta1: Float
      var beta2: Float
      var eps: Float
      var weight_decay: Float
      var max_grad_norm: Double
    }
    struct Step: Decodable {
      var grad_norm: Double
      var params: [Double]
      var m: [Double]
      var v: [Double]
    }
    var settings: Settings
    var params0: [Float]
    var grads: [[Float]]
    var steps: [Step]
  }

  static func setUp() throws -> (Fixture, LoRALayout, AdamW.Settings) {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("Fixtures/adamw_reference.json")
    let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    // One rank-1 pair on a 64×64 projection: 128 parameters, as the fixture has.
    let m = try TrainingCheck.tinyModel()
    let layout = try LoRALayout(config: m.config, modules: [(0, .q, 1, 1)])
    #expect(layout.count == f.params0.count)
    let s = f.settings
    return (
      f, layout,
      AdamW.Settings(
        learningRate: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weight_decay,
        maxGradNorm: s.max_grad_norm)
    )
  }

  static func maxDiff(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).map { abs(Double($0) - $1) }.max()!
  }

  @Test func stepsMatchNumpy() throws {
    let (f, layout, settings) = try Self.setUp()
    var opt = AdamW(layout: layout, settings: settings)
    var p = LoRAParameters(layout: layout, values: f.params0)
    for (g, want) in zip(f.grads, f.steps) {
      var grads = LoRAGradients(layout: layout)
      grads.values = g
      let norm = try opt.update(&p, gradients: &grads)
      #expect(abs(norm - want.grad_norm) < 1e-5 * want.grad_norm)
      // float32 arithmetic against float64: parameters are ~0.5, steps ~1e-2.
      #expect(Self.maxDiff(p.values, want.params) < 2e-6, "params: \(Self.maxDiff(p.values, want.params))")
      #expect(Self.maxDiff(opt.m, want.m) < 1e-6)
      #expect(Self.maxDiff(opt.v, want.v) < 1e-7)
    }
    #expect(opt.step == 4)
  }

  @Test func stateFileRoundTripResumesExactly() throws {
    let (f, layout, settings) = try Self.setUp()
    var straight = AdamW(layout: layout, settings: settings)
    var a = LoRAParameters(layout: layout, values: f.params0)
    var resumed = AdamW(layout: layout, settings: settings)
    var b = a
    let path = TinyModel.temporaryPath("optimizer.bin")
    for (i, g) in f.grads.enumerated() {
      var g1 = LoRAGradients(layout: layout)
      g1.values = g
      var g2 = g1
      try straight.update(&a, gradients: &g1)
      try resumed.update(&b, gradients: &g2)
      if i == 1 {
        try resumed.write(to: path)
        resumed = try AdamW(contentsOf: path, layout: layout)
        #expect(resumed.settings == settings && resumed.step == 2)
      }
    }
    #expect(a.values == b.values && straight.m == resumed.m && straight.v == resumed.v)

    // Refusals: another layout, a truncated file, not a state file.
    let other = try LoRALayout(config: try TrainingCheck.tinyModel().config, modules: [(0, .k, 1, 1)])
    #expect(throws: TrainingError.self) { try AdamW(contentsOf: path, layout: other) }
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    try data.prefix(data.count - 4).write(to: URL(fileURLWithPath: path))
    #expect(throws: TrainingError.self) { try AdamW(contentsOf: path, layout: layout) }
    try Data("hello".utf8).write(to: URL(fileURLWithPath: path))
    #expect(throws: TrainingError.self) { try AdamW(contentsOf: path, layout: layout) }
  }

  @Test func clippingBoundsTheNorm() throws {
    let (_, layout, _) = try Self.setUp()
    var g = LoRAGradients(layout: layout)
    for i in g.values.indices { g.values[i] = Float(i % 7) - 3 }
    let before = g.norm
    #expect(g.clip(maxNorm: 2) == before)
    #expect(abs(g.norm - 2) < 1e-5)
    #expect(g.clip(maxNorm: 5) < 5 && abs(g.norm - 2) < 1e-5)  // under the bound: untouched
  }
}
