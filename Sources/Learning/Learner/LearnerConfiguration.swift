import Foundation

/// The learner's settings (`lorad serve --learn-*`). One set of defaults for every adapter and
/// every taste: nothing here is tuned per preference.
public struct LearnerConfiguration: Sendable {
  /// The objective.
  public var loss: LossKind = .kto
  /// New effective feedback events of an adapter that wake the learner for it.
  public var batch = 16
  /// AdamW learning rate (the hidden `--learn-lr` overrides it, e.g. for the harmful-update test).
  public var learningRate: Float = 1e-3
  public var weightDecay: Float = 0
  /// Global gradient-norm clip before each step.
  public var maxGradNorm: Double = 1.0
  /// β of KTO / DPO, and the KL coefficient of REINFORCE.
  public var beta: Double = 0.1
  /// Optimizer steps per learning run (each over the whole snapshot).
  public var stepsPerRun = 1
  /// Share of requests (by a fixed hash of the request id) kept out of training for the gate.
  public var heldOutFraction = 0.2
  /// Earlier (already consumed) training examples mixed into a run, the minority class of the
  /// new feedback first, so a one-sided batch still sees both classes.
  public var replay = 8
  /// Longest sequence trained on (prompt + completion tokens); longer completions are cut.
  public var maxSequenceTokens = 256
  /// Rows of one training pass (bounds the training context's memory).
  public var passTokens = 512
  /// Threads the learner computes on: its share of the CPU.
  public var threads = 1
  /// Run automatically when an adapter has `batch` new events (false: only on request).
  public var automatic = true
  /// How often the background thread looks at the feedback counts.
  public var pollInterval: TimeInterval = 1.0
  /// Niceness of the learner's threads (serving keeps priority).
  public var niceness: Int32 = 10
  public var gate = GateConfiguration()

  public init() {}
}

/// What a candidate must satisfy before it becomes current (see `CandidateGate`).
public struct GateConfiguration: Sendable {
  /// Tokens of general text whose perplexity must not rise by more than `maxPerplexityIncrease`
  /// against the reference (anchor) policy; empty skips the check.
  public var calibrationTokens: [Int32] = []
  /// Chunk length of the perplexity (as `lorad perplexity --ctx`). 256: at 128 the first half
  /// of each chunk (unscored) leaves so little context that a harmless update moved it 4× as
  /// much as at 256 (1.4% vs 0.4% for the same version).
  public var calibrationContext = 256
  public var maxPerplexityIncrease = 0.05
  /// Held-out examples needed before the held-out comparison counts.
  public var minHeldOut = 4
  /// The candidate's held-out KTO loss may exceed the current version's by at most this (per
  /// example, at 95% confidence).
  public var heldOutTolerance = 0.01
  /// Prompts sampled to look for degeneration, and tokens per sample (all decoded in one batch).
  public var samplePrompts = 12
  public var sampleTokens = 64
  public var sampleSeed: UInt64 = 7
  /// The candidate's share of unique words and its compressibility may fall at most this share
  /// below the reference's.
  public var maxRepetitionDrop = 0.25
  /// The candidate's share of degenerate samples (`Degeneracy`: loops, repeated phrases, text
  /// copying itself) may exceed the reference's by at most this.
  public var maxDegenerateIncrease = 0.1
  /// Bound on KL(candidate ‖ reference) per sampled token (nats), exact at the positions its
  /// samples visit. 0.25: in `lorad simulate` runs, versions past ~0.3 began to answer off the
  /// point and loop (held-out up-rate falling back, degenerate answers rising) while the gate's
  /// other checks still passed them.
  public var maxKLPerToken = 0.25

  public init() {}
}

/// Why the learner refused a request. Every case says what to do.
public enum LearnerError: Error, CustomStringConvertible, Sendable {
  case unknownAdapter(String)
  case notLearnable(String)
  case stopped
  case failed(String)

  public var description: String {
    switch self {
    case .unknownAdapter(let n):
      return "no adapter '\(n)' in the adapters directory; create one with `lorad adapters new \(n) --rank 8`"
    case .notLearnable(let n):
      return
        "adapter '\(n)' is not learnable: only adapters made by `lorad adapters new` (or whose lorad.json says \"learnable\": true) learn"
    case .stopped: return "the learner is stopping"
    case .failed(let r): return "learning failed: \(r)"
    }
  }
}
