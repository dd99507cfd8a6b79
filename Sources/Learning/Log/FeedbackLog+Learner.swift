import Foundation
import Model

/// What the learner reads and writes: effective feedback joined with its generations,
/// consumption marks per adapter, learner runs, and retention.
extension FeedbackLog {
  /// The effective ratings of one adapter's generations (all its versions), oldest event first,
  /// each joined with the generation it rates. With `since`, only those whose effective event
  /// came after that sequence number — a request re-rated after the mark comes back with its
  /// new label. `adapter` nil selects generations of the base model alone.
  public func feedbackExamples(adapter: String?, since: Int64 = 0, limit: Int? = nil) throws -> [FeedbackExample] {
    var out: [FeedbackExample] = []
    try forEachExample(adapter: .some(adapter), since: since, limit: limit) { out.append($0) }
    return out
  }

  /// Calls `body` with each effective rating, oldest event first; `adapter` `.none` takes every
  /// adapter and the base, `.some(nil)` the base alone. Holds the log's lock throughout.
  func forEachExample(
    adapter: String??, since: Int64 = 0, limit: Int? = nil, _ body: (FeedbackExample) throws -> Void
  ) throws {
    try locked {
      try withQueuedCommitted {
        let s = try db.prepare(
          """
          SELECT f.seq, f.request, f.rating, f.note, f.time, g.adapter, g.version, g.prompt, g.prompt_tokens,
            g.completion, g.completion_tokens, g.logprobs, g.finish
          FROM feedback f JOIN generations g ON g.request = f.request
          WHERE f.seq > ?1 AND (?2 = 0 OR g.adapter IS ?3)
            AND f.seq = (SELECT max(h.seq) FROM feedback h WHERE h.request = f.request)
          ORDER BY f.seq LIMIT ?4
          """)
        let filter: SQLiteValue = adapter.map { $0.map(SQLiteValue.text) ?? .null } ?? .null
        try s.bind([.integer(since), .integer(adapter == nil ? 0 : 1), filter, .integer(Int64(limit ?? -1))])
        defer { s.reset() }
        while try s.step() {
          let request = s.text(1)
          try body(
            FeedbackExample(
              seq: s.int64(0), request: request, rating: try rating(s.text(2)), note: s.optionalText(3),
              time: Date(timeIntervalSince1970: s.double(4)), adapter: s.optionalText(5),
              version: s.optionalInt64(6).map { Int($0) }, prompt: s.text(7), promptTokens: try tokens(s, 8, request),
              completion: s.text(9), completionTokens: try tokens(s, 10, request),
              logprobs: try logprobs(s, 11, request), finish: FinishReason(rawValue: s.text(12)) ?? .length))
        }
      }
    }
  }

  /// Per adapter, the effective ratings that arrived after its consumption mark (adapters with
  /// none are left out; so is the base model, which no learner trains). Sorted by name.
  public func newFeedbackCounts() throws -> [AdapterFeedbackCount] {
    try locked {
      try withQueuedCommitted {
        let s = try db.prepare(
          """
          SELECT g.adapter, sum(f.rating = 'up'), sum(f.rating = 'down'), max(f.seq)
          FROM feedback f JOIN generations g ON g.request = f.request
            LEFT JOIN learner_marks m ON m.adapter = g.adapter
          WHERE g.adapter IS NOT NULL AND f.seq > coalesce(m.seq, 0)
            AND f.seq = (SELECT max(h.seq) FROM feedback h WHERE h.request = f.request)
          GROUP BY g.adapter ORDER BY g.adapter
          """)
        var out: [AdapterFeedbackCount] = []
        while try s.step() {
          out.append(AdapterFeedbackCount(adapter: s.text(0), up: s.int(1), down: s.int(2), latestSeq: s.int64(3)))
        }
        return out
      }
    }
  }

  /// The sequence number up to which the learner has consumed an adapter's feedback (0: none).
  public func consumedMark(adapter: String) throws -> Int64 {
    try locked { try db.scalarInt("SELECT seq FROM learner_marks WHERE adapter = ?1", [.text(adapter)]) ?? 0 }
  }

  /// Records that the learner has consumed an adapter's feedback up to event `seq` (inclusive);
  /// durable when it returns. May move backwards (a rollback re-opens feedback).
  public func setConsumedMark(adapter: String, seq: Int64, time: Date = Date()) throws {
    guard seq >= 0 else {
      throw FeedbackLogError.invalidArgument("a consumption mark must not be negative (got \(seq))")
    }
    try locked {
      try db.prepare(
        """
        INSERT INTO learner_marks (adapter, seq, time) VALUES (?1, ?2, ?3)
        ON CONFLICT (adapter) DO UPDATE SET seq = excluded.seq, time = excluded.time
        """
      ).run([.text(adapter), .integer(seq), .real(time.timeIntervalSince1970)])
    }
  }

  /// The highest feedback sequence number so far (0 before the first feedback).
  public func latestFeedbackSeq() throws -> Int64 {
    try locked { try db.scalarInt("SELECT max(seq) FROM feedback") ?? 0 }
  }

  /// Records one learner run; returns it with its id. `metrics` must be JSON.
  @discardableResult
  public func recordLearnerRun(_ run: LearnerRun) throws -> LearnerRun {
    guard !run.adapter.isEmpty else { throw FeedbackLogError.invalidArgument("a learner run needs an adapter name") }
    guard (try? JSONSerialization.jsonObject(with: Data(run.metrics.utf8), options: .fragmentsAllowed)) != nil else {
      throw FeedbackLogError.invalidArgument("learner run metrics are not JSON: \(run.metrics.prefix(80))")
    }
    return try locked {
      try db.prepare(
        """
        INSERT INTO learner_runs (adapter, from_version, to_version, outcome, reason, metrics, time)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
        """
      ).run([
        .text(run.adapter), .integer(Int64(run.fromVersion)), run.toVersion.map { .integer(Int64($0)) } ?? .null,
        .text(run.outcome.rawValue), .text(run.reason), .text(run.metrics), .real(run.time.timeIntervalSince1970),
      ])
      var stored = run
      stored.id = db.lastInsertRowID
      return stored
    }
  }

  /// Learner runs, newest first; `adapter` nil lists every adapter's.
  public func learnerRuns(adapter: String? = nil, limit: Int = 100) throws -> [LearnerRun] {
    try locked {
      let s = try db.prepare(
        """
        SELECT id, adapter, from_version, to_version, outcome, reason, metrics, time FROM learner_runs
        WHERE ?1 IS NULL OR adapter = ?1 ORDER BY id DESC LIMIT ?2
        """)
      try s.bind([adapter.map(SQLiteValue.text) ?? .null, .integer(Int64(limit))])
      var out: [LearnerRun] = []
      while try s.step() {
        guard let outcome = LearnerRun.Outcome(rawValue: s.text(4)) else {
          throw FeedbackLogError.corrupt(path: path, reason: "learner run \(s.int64(0)) has outcome '\(s.text(4))'")
        }
        out.append(
          LearnerRun(
            id: s.int64(0), adapter: s.text(1), fromVersion: s.int(2), toVersion: s.optionalInt64(3).map { Int($0) },
            outcome: outcome, reason: s.text(5), metrics: s.text(6), time: Date(timeIntervalSince1970: s.double(7))))
      }
      return out
    }
  }

  /// Deletes generations older than `date` that no feedback rates (rated ones and every
  /// feedback event are kept); returns how many went.
  @discardableResult
  public func prune(olderThan date: Date) throws -> Int {
    try locked {
      try withQueuedCommitted {
        try db.transaction {
          try db.prepare(
            """
            DELETE FROM generations WHERE time < ?1
              AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.request = generations.request)
            """
          ).run([.real(date.timeIntervalSince1970)])
          return db.changes
        }
      }
    }
  }

  /// `prune(olderThan:)` with the configured retention; nothing when retention is nil.
  @discardableResult
  public func pruneExpired(now: Date = Date()) throws -> Int {
    guard let retention = configuration.retention else { return 0 }
    return try prune(olderThan: now.addingTimeInterval(-retention))
  }
}
