import Foundation

/// Counts for `lorad log stats` and the daemon's `stats` op.
extension FeedbackLog {
  /// What the log holds and what its writer has done.
  public struct Stats: Sendable, Equatable {
    /// Per adapter (nil: the base model): generations logged and their effective ratings.
    public struct PerAdapter: Sendable, Equatable {
      public var adapter: String?
      public var generations: Int
      public var up: Int
      public var down: Int
      /// Effective ratings after the learner's consumption mark.
      public var new: Int
    }

    public var generations = 0
    public var feedbackEvents = 0
    public var ratedRequests = 0
    public var learnerRuns = 0
    public var oldest: Date?
    public var newest: Date?
    public var adapters: [PerAdapter] = []
    /// Generations waiting in the queue.
    public var queued = 0
    /// Written by this process since open; refused by a constraint and dropped; failed commits.
    public var written = 0
    public var dropped = 0
    public var writeFailures = 0
    public var lastWriteError: FeedbackLogError?
    /// The database and its WAL on disk.
    public var databaseBytes = 0
    public var walBytes = 0
  }

  /// Counts of the log (queued generations committed first).
  public func stats() throws -> Stats {
    var st = try locked {
      try withQueuedCommitted {
        var st = Stats()
        func count(_ sql: String) throws -> Int { Int(try db.scalarInt(sql) ?? 0) }
        st.generations = try count("SELECT count(*) FROM generations")
        st.feedbackEvents = try count("SELECT count(*) FROM feedback")
        st.ratedRequests = try count("SELECT count(DISTINCT request) FROM feedback")
        st.learnerRuns = try count("SELECT count(*) FROM learner_runs")
        let range = try db.prepare("SELECT min(time), max(time) FROM generations")
        if try range.step(), !range.isNull(0) {
          st.oldest = Date(timeIntervalSince1970: range.double(0))
          st.newest = Date(timeIntervalSince1970: range.double(1))
        }
        range.reset()
        let s = try db.prepare(
          """
          SELECT g.adapter, count(*), coalesce(sum(e.rating = 'up'), 0), coalesce(sum(e.rating = 'down'), 0),
            coalesce(sum(e.seq > coalesce(m.seq, 0)), 0)
          FROM generations g LEFT JOIN effective_feedback e ON e.request = g.request
            LEFT JOIN learner_marks m ON m.adapter = g.adapter
          GROUP BY g.adapter ORDER BY g.adapter IS NOT NULL, g.adapter
          """)
        while try s.step() {
          st.adapters.append(
            .init(adapter: s.optionalText(0), generations: s.int(1), up: s.int(2), down: s.int(3), new: s.int(4)))
        }
        st.written = written
        st.dropped = dropped
        st.writeFailures = writeFailures
        st.lastWriteError = lastWriteError
        return st
      }
    }
    st.queued = queuedCount
    let fm = FileManager.default
    st.databaseBytes = (try? fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    st.walBytes = (try? fm.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
    return st
  }

  /// The journal mode SQLite reports for the connection ("wal").
  public func journalMode() throws -> String {
    try locked { try db.scalarText("PRAGMA journal_mode") ?? "" }
  }

  /// The schema version stored in the file (`PRAGMA user_version`).
  public func schemaVersion() throws -> Int {
    try locked { Int(try db.scalarInt("PRAGMA user_version") ?? 0) }
  }
}
