import Foundation
import Model

/// Which objective the learner optimises (`lorad serve --loss`).
public enum LossKind: String, Sendable, CaseIterable, Codable {
  /// KTO (`KTOLoss`): every rated completion on its own, thumbs up desirable, down undesirable.
  case kto
  /// DPO: pairs of an up and a down on the same prompt.
  case dpo
  /// REINFORCE with a leave-one-out baseline and a KL penalty to the reference.
  case reinforce
}

/// Direct Preference Optimization (Rafailov et al. 2023), as TRL's `DPOTrainer` computes its
/// sigmoid loss:
///   h = β · ((log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x)))
///   loss = mean over pairs of −log σ(h).
/// A pure function of log-probabilities: `evaluate` returns the loss and the weight
/// dLoss/dlog π_θ of every sequence (each sequence in at most one pair here).
public struct DPOLoss: Sendable {
  public var beta: Double

  public init(beta: Double = 0.1) { self.beta = beta }

  /// One preference pair: indices of the preferred (thumbs-up) and dispreferred (thumbs-down)
  /// sequence in the batch.
  public struct Pair: Sendable, Equatable {
    public var chosen: Int
    public var rejected: Int
    public init(chosen: Int, rejected: Int) {
      self.chosen = chosen
      self.rejected = rejected
    }
  }

  /// The pairs of a batch: examples grouped by prompt (`key`: the prompt's tokens or text); in
  /// each group the i-th up is paired with the i-th down, in batch order. Examples without a
  /// partner are left out.
  public static func pairs<Key: Hashable>(keys: [Key], desirable: [Bool]) -> [Pair] {
    precondition(keys.count == desirable.count)
    var ups: [Key: [Int]] = [:]
    var downs: [Key: [Int]] = [:]
    var order: [Key] = []
    for (i, k) in keys.enumerated() {
      if ups[k] == nil && downs[k] == nil { order.append(k) }
      if desirable[i] { ups[k, default: []].append(i) } else { downs[k, default: []].append(i) }
    }
    var out: [Pair] = []
    for k in order {
      for (c, r) in zip(ups[k] ?? [], downs[k] ?? []) { out.append(Pair(chosen: c, rejected: r)) }
    }
    return out
  }

  /// The loss over `pairs`, the weight dLoss/dlog π_θ of each of the `policy.count` sequences
  /// (0 for sequences in no pair), and each pair's reward margin h/β.
  public func evaluate(policy: [Double], reference: [Double], pairs: [Pair]) -> (
    loss: Double, weights: [Double], margins: [Double]
  ) {
    precondition(policy.count == reference.count)
    var weights = [Double](repeating: 0, count: policy.count)
    guard !pairs.isEmpty else { return (0, weights, []) }
    let n = Double(pairs.count)
    var loss: Double = 0
    var margins: [Double] = []
    for p in pairs {
      let m = (policy[p.chosen] - reference[p.chosen]) - (policy[p.rejected] - reference[p.rejected])
      let h = beta * m
      // −log σ(h) = softplus(−h); d/dh = −σ(−h).
      loss += h >= 0 ? log1p(exp(-h)) : -h + log1p(exp(h))
      let g = -KTOLoss.sigmoidValue(-h) * beta / n
      weights[p.chosen] += g
      weights[p.rejected] -= g
      margins.append(m)
    }
    return (loss / n, weights, margins)
  }
}

/// REINFORCE with a leave-one-out baseline (RLOO, Ahmadian et al. 2024) and the usual RLHF KL
/// penalty folded into the reward:
///   r'_i = r_i − β · (log π_θ(y_i|x_i) − log π_ref(y_i|x_i))   (r_i = +1 up, −1 down; detached)
///   A_i  = r'_i − mean_{j≠i} r'_j
///   loss = −(1/n) Σ_i A_i · log π_θ(y_i|x_i)      (the surrogate whose gradient is the policy gradient)
/// so `evaluate`'s weights are dLoss/dlog π_i = −A_i / n with A held fixed.
public struct ReinforceLoss: Sendable {
  /// The KL penalty's coefficient.
  public var beta: Double

  public init(beta: Double = 0.1) { self.beta = beta }

  /// The surrogate loss, each sequence's weight −A_i/n, and each advantage A_i.
  public func evaluate(policy: [Double], reference: [Double], desirable: [Bool]) -> (
    loss: Double, weights: [Double], advantages: [Double]
  ) {
    precondition(policy.count == reference.count && policy.count == desirable.count)
    let n = policy.count
    guard n >= 2 else { return (0, [Double](repeating: 0, count: n), [Double](repeating: 0, count: n)) }
    let shaped = (0..<n).map { (desirable[$0] ? 1.0 : -1.0) - beta * (policy[$0] - reference[$0]) }
    let total = shaped.reduce(0, +)
    let adv = (0..<n).map { shaped[$0] - (total - shaped[$0]) / Double(n - 1) }
    var loss: Double = 0
    for i in 0..<n { loss -= adv[i] * policy[i] }
    return (loss / Double(n), adv.map { -$0 / Double(n) }, adv)
  }
}

extension KTOLoss {
  /// σ(u), without overflow for large |u| (the losses here share it).
  static func sigmoidValue(_ u: Double) -> Double {
    u >= 0 ? 1 / (1 + exp(-u)) : exp(u) / (1 + exp(u))
  }
}
