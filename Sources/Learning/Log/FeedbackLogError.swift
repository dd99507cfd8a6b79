/// Why the feedback log refused or failed. Every case says what, where, and what to do.
public enum FeedbackLogError: Error, CustomStringConvertible, Equatable, Sendable {
  /// SQLite failed (disk full, permissions, a lock held too long, a corrupt file).
  case storage(SQLiteError)
  /// Feedback for a request id the log has never seen (or whose generation was pruned).
  case unknownRequest(String)
  /// Feedback by someone other than the identity that made the request. The owner is not
  /// named, so the refusal leaks nothing.
  case notYourRequest(request: String)
  /// A generation record the log cannot store as given.
  case invalidRecord(request: String, reason: String)
  /// A generation whose request id is already in the log; the later row was dropped.
  case duplicateRequest(String)
  /// A learner run or other argument out of range.
  case invalidArgument(String)
  /// The database was written by a newer lorad.
  case newerSchema(path: String, found: Int, known: Int)
  /// The file holds data the log cannot decode.
  case corrupt(path: String, reason: String)
  /// No database where one was required to exist.
  case noDatabase(path: String)
  /// The log was closed; nothing more can be recorded.
  case closed(path: String)

  public var description: String {
    switch self {
    case .storage(let e): return "feedback log: \(e)"
    case .unknownRequest(let r):
      return "no generation '\(r)' in the feedback log; rate the request id from a start/done event (r-…), "
        + "and note that unrated generations are pruned after the retention period"
    case .notYourRequest(let r):
      return "request '\(r)' was made by another identity; only the identity that made a request may rate it"
    case .invalidRecord(let r, let why): return "cannot log generation '\(r)': \(why)"
    case .duplicateRequest(let r):
      return "generation '\(r)' is already in the feedback log; request ids must be unique, the later row was dropped"
    case .invalidArgument(let why): return "feedback log: \(why)"
    case .newerSchema(let p, let found, let known):
      return "\(p) has schema version \(found) but this lorad knows up to \(known); run a newer lorad, "
        + "or move the file aside to start a new log"
    case .corrupt(let p, let why): return "\(p): \(why); the file is damaged — move it aside to start a new log"
    case .noDatabase(let p):
      return "no feedback log at \(p); run the daemon once (lorad serve) or pass --state DIR pointing at its state"
    case .closed(let p): return "the feedback log \(p) is closed"
    }
  }
}
