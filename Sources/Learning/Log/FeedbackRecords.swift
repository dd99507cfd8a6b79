import Foundation
import Model

/// A thumbs-up or thumbs-down (the wire protocol's `rating`).
public enum FeedbackRating: String, Sendable, Equatable, CaseIterable {
  case up, down

  /// KTO's label: true for a desirable completion.
  public var label: Bool { self == .up }
}

/// One feedback event as stored: every event is kept; the latest one of a request is its
/// effective rating.
public struct FeedbackEvent: Sendable, Equatable {
  /// The event sequence number: increases with every event, never reused.
  public var seq: Int64
  public var request: String
  public var rating: FeedbackRating
  public var note: String?
  public var time: Date
  public var who: String?
}

/// An effective rating joined with the generation it rates: what the learner trains on.
public struct FeedbackExample: Sendable, Equatable {
  /// The sequence number of the effective (latest) event of this request.
  public var seq: Int64
  public var request: String
  public var rating: FeedbackRating
  public var note: String?
  public var time: Date
  /// The adapter and exact version that produced the completion (nil for the base model).
  public var adapter: String?
  public var version: Int?
  public var prompt: String
  /// (prompt_len)
  public var promptTokens: [Int32]
  public var completion: String
  /// (completion_len)
  public var completionTokens: [Int32]
  /// (completion_len) the serving policy's log-probabilities of the completion tokens.
  public var logprobs: [Float]
  /// How the generation ended: `stop` when the model ended it (or a stop string did), so the
  /// end-of-generation token belongs to what was rated.
  public var finish: FinishReason = .length

  /// KTO's label: true for thumbs-up.
  public var label: Bool { rating.label }

  /// True when this example belongs to the held-out slice of size `fraction` (0…1): decided by
  /// a fixed hash of the request id alone, so the same example stays on the same side across
  /// runs, processes and re-ratings.
  public func isHeldOut(fraction: Double) -> Bool { HeldOutSplit.isHeldOut(request: request, fraction: fraction) }
}

/// The deterministic train / held-out split by request id.
public enum HeldOutSplit {
  /// The id's place in [0, 1): the top 53 bits of `hash(request:)` over 2^53.
  public static func position(request: String) -> Double {
    Double(hash(request: request) >> 11) / Double(UInt64(1) << 53)
  }

  /// FNV-1a (64-bit) of the id's UTF-8 bytes, then splitmix64's finalizer (FNV's high bits
  /// alone change little between ids that differ only in their last characters). Stable
  /// across processes, unlike Swift's seeded `Hasher`.
  static func hash(request: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in request.utf8 {
      h ^= UInt64(b)
      h &*= 0x100_0000_01b3
    }
    h ^= h >> 30
    h &*= 0xbf58_476d_1ce4_e5b9
    h ^= h >> 27
    h &*= 0x94d0_49bb_1331_11eb
    h ^= h >> 31
    return h
  }

  public static func isHeldOut(request: String, fraction: Double) -> Bool {
    position(request: request) < fraction
  }
}

/// New effective feedback of one adapter since its consumption mark.
public struct AdapterFeedbackCount: Sendable, Equatable {
  public var adapter: String
  public var up: Int
  public var down: Int
  public var total: Int { up + down }
  /// The highest event sequence number among them: the mark to set once they are consumed.
  public var latestSeq: Int64
}

/// What the learner did with one adapter, as it reports it.
public struct LearnerRun: Sendable, Equatable {
  public enum Outcome: String, Sendable, Equatable, CaseIterable {
    /// A new version was written and made current.
    case promoted
    /// A candidate was trained and refused (held-out loss, KL bound, …); `reason` says why.
    case rejected
    /// Not enough new feedback to train on.
    case nothing
  }

  /// Assigned by the log; 0 in a run not yet recorded.
  public var id: Int64
  public var adapter: String
  public var fromVersion: Int
  /// The version written, nil when none was.
  public var toVersion: Int?
  public var outcome: Outcome
  public var reason: String
  /// A JSON document of the run's figures (losses, KL, counts).
  public var metrics: String
  public var time: Date

  public init(
    id: Int64 = 0, adapter: String, fromVersion: Int, toVersion: Int?, outcome: Outcome, reason: String,
    metrics: String = "{}", time: Date = Date()
  ) {
    self.id = id
    self.adapter = adapter
    self.fromVersion = fromVersion
    self.toVersion = toVersion
    self.outcome = outcome
    self.reason = reason
    self.metrics = metrics
    self.time = time
  }
}
