import Foundation
import Model
import Testing

@testable import Learning

/// DPO and REINFORCE against float64 numpy with finite-difference weights
/// (`Fixtures/make_loss_reference.py`).
@Suite struct PreferenceLossTests {
  struct Fixture: Decodable {
    struct DPO: Decodable {
      var pairs: [[Int]]
      var loss: Double
      var weights: [Double]
    }
    struct Reinforce: Decodable {
      var advantages: [Double]
      var loss: Double
      var weights: [Double]
    }
    var beta: Double
    var policy: [Double]
    var reference: [Double]
    var desirable: [Bool]
    var prompts: [Int]
    var dpo: DPO
    var reinforce: Reinforce
  }

  static func fixture() throws -> Fixture {
    let url = try #require(
      Bundle.module.url(forResource: "loss_reference", withExtension: "json", subdirectory: "Fixtures"))
    return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
  }

  @Test func dpoMatchesNumpy() throws {
    let f = try Self.fixture()
    let pairs = DPOLoss.pairs(keys: f.prompts, desirable: f.desirable)
    #expect(pairs.map { [$0.chosen, $0.rejected] } == f.dpo.pairs)
    #expect(!pairs.isEmpty)
    let (loss, weights, margins) = DPOLoss(beta: f.beta).evaluate(
      policy: f.policy, reference: f.reference, pairs: pairs)
    #expect(abs(loss - f.dpo.loss) < 1e-12)
    let worst = zip(weights, f.dpo.weights).map { abs($0 - $1) }.max()!
    #expect(worst < 1e-8, "DPO weights vs numpy finite differences: \(worst)")
    #expect(margins.count == pairs.count)
    // The preferred completion is pushed up, the other down; unpaired ones are left alone.
    for p in pairs { #expect(weights[p.chosen] < 0 && weights[p.rejected] > 0) }
    let paired = Set(pairs.flatMap { [$0.chosen, $0.rejected] })
    for i in weights.indices where !paired.contains(i) { #expect(weights[i] == 0) }
  }

  @Test func reinforceMatchesNumpy() throws {
    let f = try Self.fixture()
    let (loss, weights, adv) = ReinforceLoss(beta: f.beta).evaluate(
      policy: f.policy, reference: f.reference, desirable: f.desirable)
    #expect(zip(adv, f.reinforce.advantages).allSatisfy { abs($0 - $1) < 1e-12 })
    #expect(abs(loss - f.reinforce.loss) < 1e-9)
    let worst = zip(weights, f.reinforce.weights).map { abs($0 - $1) }.max()!
    #expect(worst < 1e-8, "REINFORCE weights vs numpy finite differences: \(worst)")
    // Leave-one-out advantages sum to zero over a batch; ups get pushed up when they beat the rest.
    #expect(abs(adv.reduce(0, +)) < 1e-9)
  }

  @Test func oneSidedAndTinyBatches() {
    #expect(DPOLoss.pairs(keys: [1, 1, 2], desirable: [true, true, true]).isEmpty)
    let (l, w, _) = DPOLoss().evaluate(policy: [-1, -2], reference: [-1, -2], pairs: [])
    #expect(l == 0 && w == [0, 0])
    let r = ReinforceLoss().evaluate(policy: [-3], reference: [-3], desirable: [true])
    #expect(r.weights == [0])
  }
}
