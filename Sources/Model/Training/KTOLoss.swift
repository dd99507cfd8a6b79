import Foundation

/// One example of a KTO batch: its completion's log-probability under the policy being trained
/// (base + adapter) and under the reference (the frozen base, or the adapter before learning),
/// and whether the user liked it.
public struct KTOExample: Sendable {
  public var logProb: Double
  public var referenceLogProb: Double
  public var desirable: Bool

  public init(logProb: Double, referenceLogProb: Double, desirable: Bool) {
    self.logProb = logProb
    self.referenceLogProb = referenceLogProb
    self.desirable = desirable
  }
}

/// Kahneman–Tversky Optimization (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect
/// Theoretic Optimization"), as TRL's `KTOTrainer` computes it:
///   r = log π_θ(y|x) − log π_ref(y|x)                         the implicit reward
///   z = max(0, mean over mismatched pairs (x_i, y_j) of log π_θ(y_j|x_i) − log π_ref(y_j|x_i)),
///       detached (no gradient flows through it)
///   loss_i = λ_D · (1 − σ(β(r_i − z)))  for a desirable y (thumbs up)
///          = λ_U · (1 − σ(β(z − r_i)))  for an undesirable y (thumbs down)
///   loss = mean_i loss_i.
/// A pure function of log-probabilities: `evaluate` returns the loss and, per example, the weight
/// dLoss/dlog π_θ(y_i|x_i) that `LoRATrainingContext.accumulateGradient` takes.
public struct KTOLoss: Sendable {
  public var beta: Double
  /// λ_D and λ_U: the weights of desirable and undesirable examples.
  public var desirableWeight: Double
  public var undesirableWeight: Double

  public init(beta: Double = 0.1, desirableWeight: Double = 1, undesirableWeight: Double = 1) {
    self.beta = beta
    self.desirableWeight = desirableWeight
    self.undesirableWeight = undesirableWeight
  }

  /// λ_U = 1 and λ_D such that λ_D · n_D / (λ_U · n_U) = `ratio` (the paper recommends a ratio
  /// in [1, 4/3]), from the counts of thumbs up (n_D) and down (n_U); 1 and 1 when either is zero.
  public static func balanced(
    beta: Double = 0.1, desirableCount nD: Int, undesirableCount nU: Int, ratio: Double = 1
  ) -> KTOLoss {
    guard nD > 0, nU > 0 else { return KTOLoss(beta: beta) }
    return KTOLoss(beta: beta, desirableWeight: ratio * Double(nU) / Double(nD), undesirableWeight: 1)
  }

  /// The mismatched (prompt, completion) pairs of a batch of `count` examples whose log-ratios
  /// estimate z: prompt i with the completion of example i + 1 (mod count), as TRL pairs them.
  public static func mismatchedPairs(count: Int) -> [(prompt: Int, completion: Int)] {
    count < 2 ? [] : (0..<count).map { ($0, ($0 + 1) % count) }
  }

  /// z = max(0, mean(policy − reference)) over the mismatched pairs' log-probabilities; 0 when
  /// there are none. Treated as a constant by `evaluate` (detached).
  public static func referencePoint(policy: [Double], reference: [Double]) -> Double {
    precondition(policy.count == reference.count)
    guard !policy.isEmpty else { return 0 }
    let kl = zip(policy, reference).reduce(0) { $0 + ($1.0 - $1.1) } / Double(policy.count)
    return max(0, kl)
  }

  /// The batch's loss, each example's dLoss/dlog π_θ (its gradient weight), and each example's
  /// reward β·r (for logs), given the reference point z.
  public func evaluate(_ batch: [KTOExample], referencePoint z: Double) -> (
    loss: Double, weights: [Double], rewards: [Double]
  ) {
    guard !batch.isEmpty else { return (0, [], []) }
    let terms = batch.map { example($0, referencePoint: z, batchSize: batch.count) }
    return (terms.reduce(0) { $0 + $1.loss }, terms.map(\.weight), terms.map(\.reward))
  }

  /// One example's share of the mean loss over a batch of `batchSize`, its weight
  /// dLoss/dlog π_θ(y|x), and its reward β·r: what `accumulateGradient(weighting:)` needs per
  /// sequence once z is known.
  public func example(_ e: KTOExample, referencePoint z: Double, batchSize: Int) -> (
    loss: Double, weight: Double, reward: Double
  ) {
    let n = Double(max(1, batchSize))
    let r = e.logProb - e.referenceLogProb
    // u is the sigmoid's argument; d(1 − σ(u))/du = −σ(u)(1 − σ(u)), du/dr = ±β.
    let u = e.desirable ? beta * (r - z) : beta * (z - r)
    let s = Self.sigmoid(u)
    let lambda = e.desirable ? desirableWeight : undesirableWeight
    let dLdu = -lambda * s * (1 - s)
    return (lambda * (1 - s) / n, dLdu * (e.desirable ? beta : -beta) / n, beta * r)
  }

  /// σ(u) = 1 / (1 + e^(−u)), without overflow for large |u|.
  static func sigmoid(_ u: Double) -> Double {
    u >= 0 ? 1 / (1 + exp(-u)) : exp(u) / (1 + exp(u))
  }
}
