import Foundation

/// The durable log of what lorad generated and what its users thought of it: every finished
/// generation (prompt, completion, token ids, the serving policy's logprobs, adapter@version,
/// sampling), every feedback event, and the learner's marks and runs — one SQLite database,
/// `STATE/lorad.db`, in WAL mode with `synchronous=FULL`.
///
/// Durability: `recordFeedback` returns only after its row is committed and the WAL synced, so
/// a feedback the daemon acknowledged survives a crash or power loss. Generations are written
/// in batches off the hot path: `record(_:)` only appends to a queue, and a writer thread
/// commits the queue every `batchInterval` or `batchSize` rows, whichever comes first. `flush()`
/// commits it at once; every read and every feedback commits it first, so a rating of a request
/// whose row is still queued works and a query sees every record made before it. `close()`
/// commits what is left; a crash loses at most the last `batchInterval` of unrated generations.
///
/// Thread safety: any thread may call any method. Two locks, always taken in this order:
/// `dbLock` serialises the SQLite connection, its prepared statements, the write counters and
/// the taking of queued rows for a commit (so once `flush()` holds it, no earlier batch is still
/// in flight); `queue` (a condition) guards the queue alone, so `record(_:)` never waits for a
/// commit. The writer thread holds the log weakly: dropping the last reference closes it too.
public final class FeedbackLog: @unchecked Sendable {  // state under dbLock / queue, see above
  /// Tunables; the defaults suit the daemon.
  public struct Configuration: Sendable {
    /// Longest time a generation waits in the queue before the writer commits it.
    public var batchInterval: TimeInterval = 0.05
    /// A queue this long is committed at once.
    public var batchSize = 64
    /// `record(_:)` refuses rows beyond this many queued (the disk is failing or stalled).
    public var maxQueued = 100_000
    /// How long unrated generations are kept by `pruneExpired()`; nil keeps them forever.
    public var retention: TimeInterval? = 30 * 86_400
    /// How long a write waits for a lock held by another process (e.g. `lorad log export`).
    public var busyTimeoutMilliseconds: Int32 = 5_000
    /// The writer thread's failures (a failed commit, retried; a row refused and dropped),
    /// called on that thread without any lock held.
    public var onWriteError: (@Sendable (FeedbackLogError) -> Void)?

    public init() {}
  }

  /// The database file name inside a state directory.
  public static let fileName = "lorad.db"

  /// The database file.
  public let path: String
  public let configuration: Configuration

  // Guarded by dbLock.
  let dbLock = NSLock()
  let db: SQLiteConnection
  let statements: Statements
  var isOpen = true
  var written = 0
  var dropped = 0
  var writeFailures = 0
  var lastWriteError: FeedbackLogError?
  /// Refusals found while committing a batch, handed to `onWriteError` after dbLock is released.
  var reports: [FeedbackLogError] = []

  // Guarded by queue.
  let queue = NSCondition()
  var pending: [GenerationRecord] = []
  /// When the oldest queued row arrived.
  var pendingSince = Date.distantPast
  /// The writer waits until then after a failed commit.
  var retryAt = Date.distantPast
  var closing = false

  /// The statements every commit uses, prepared once.
  struct Statements {
    let insertGeneration: SQLiteStatement
    let ownerOf: SQLiteStatement
    let insertFeedback: SQLiteStatement
  }

  /// Opens the log in a state directory (created if missing): `DIR/lorad.db`.
  public convenience init(stateDirectory: String, configuration: Configuration = Configuration()) throws {
    do {
      try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
    } catch {
      throw FeedbackLogError.invalidArgument(
        "cannot create the state directory \(stateDirectory): \(error.localizedDescription); pass a writable --state DIR"
      )
    }
    try self.init(path: stateDirectory + "/" + Self.fileName, configuration: configuration)
  }

  /// Opens the database at `path`, creating it unless `create` is false (then a missing file
  /// throws `noDatabase`), switches it to WAL with full syncs, and migrates its schema.
  public init(path: String, create: Bool = true, configuration: Configuration = Configuration()) throws {
    if !create && !FileManager.default.fileExists(atPath: path) { throw FeedbackLogError.noDatabase(path: path) }
    self.path = path
    self.configuration = configuration
    do {
      db = try SQLiteConnection(path: path, busyTimeoutMilliseconds: configuration.busyTimeoutMilliseconds)
      try db.enableWAL()
      try db.execute("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")
      try LogSchema.migrate(db)
      statements = Statements(
        insertGeneration: try db.prepare(
          """
          INSERT INTO generations (request, time, who, adapter, version, prompt, prompt_tokens, completion,
            completion_tokens, logprobs, temperature, top_p, top_k, seed, max_tokens, stop, finish)
          VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
          """),
        ownerOf: try db.prepare("SELECT who FROM generations WHERE request = ?1"),
        insertFeedback: try db.prepare(
          "INSERT INTO feedback (request, rating, note, time, who) VALUES (?1, ?2, ?3, ?4, ?5)"))
    } catch let e as SQLiteError {
      throw FeedbackLogError.storage(e)
    }
    let thread = Thread { [weak self] in
      while let log = self, log.writerStep() {}
    }
    thread.name = "lorad-log-writer"
    thread.start()
  }

  deinit { try? close() }

  /// Queues one finished generation for the next batch commit. Cheap: validates and appends.
  /// Throws `invalidRecord` for a row the log cannot use, `closed` after `close()`, and
  /// `invalidArgument` when `maxQueued` rows are already waiting (the disk is failing).
  public func record(_ generation: GenerationRecord) throws {
    try generation.validate()
    queue.lock()
    defer { queue.unlock() }
    if closing { throw FeedbackLogError.closed(path: path) }
    guard pending.count < configuration.maxQueued else {
      throw FeedbackLogError.invalidArgument(
        "\(pending.count) generations are waiting to be written to \(path); the disk is failing or stalled — "
          + "see the writer's errors")
    }
    if pending.isEmpty { pendingSince = Date() }
    pending.append(generation)
    if pending.count == 1 || pending.count >= configuration.batchSize { queue.signal() }
  }

  /// Commits every queued generation now; returns once they are durable.
  public func flush() throws {
    try locked { try withQueuedCommitted {} }
  }

  /// Commits the queue and closes the database. Later calls do nothing; `record` then throws
  /// `closed`. If the final commit fails, the queued rows are lost and the error is thrown.
  public func close() throws {
    queue.lock()
    let first = !closing
    closing = true
    queue.broadcast()
    queue.unlock()
    guard first else { return }
    try locked {
      defer {
        isOpen = false
        db.close()
      }
      try withQueuedCommitted {}
    }
  }

  /// Generations queued and not yet committed.
  public var queuedCount: Int {
    queue.lock()
    defer { queue.unlock() }
    return pending.count
  }

  // MARK: - Committing

  /// Runs `body` with `dbLock` held, SQLite errors mapped to `storage`, and the writer's
  /// refusal reports delivered after the lock is released.
  func locked<T>(_ body: () throws -> T) throws -> T {
    dbLock.lock()
    let result: Result<T, Error>
    if isOpen {
      result = Result { try body() }.mapError { ($0 as? SQLiteError).map(FeedbackLogError.storage) ?? $0 }
    } else {
      result = .failure(FeedbackLogError.closed(path: path))
    }
    let toReport = reports
    reports = []
    dbLock.unlock()
    if let handler = configuration.onWriteError { for r in toReport { handler(r) } }
    return try result.get()
  }

  /// Under `dbLock`: takes the whole queue and, when it is not empty, inserts it and runs
  /// `body` in one transaction (so a feedback commits together with the generation it rates,
  /// one sync for both). A row a constraint refuses (a duplicate request id) is dropped and
  /// reported; any other failure rolls back, puts the rows back at the head of the queue and
  /// throws.
  func withQueuedCommitted<T>(_ body: () throws -> T) throws -> T {
    queue.lock()
    let batch = pending
    pending = []
    queue.unlock()
    if batch.isEmpty { return try body() }
    var refused: [FeedbackLogError] = []
    do {
      let result = try db.transaction {
        refused = []
        for g in batch {
          do {
            try insert(g)
          } catch let e as SQLiteError where e.isConstraint {
            refused.append(
              e.isUniqueViolation
                ? .duplicateRequest(g.request) : .invalidRecord(request: g.request, reason: e.message))
          }
        }
        return try body()
      }
      written += batch.count - refused.count
      dropped += refused.count
      reports += refused
      return result
    } catch {
      queue.lock()
      pending = batch + pending
      pendingSince = min(pendingSince, Date())
      queue.unlock()
      throw error
    }
  }

  private func insert(_ g: GenerationRecord) throws {
    let s = g.sampling
    try statements.insertGeneration.run([
      .text(g.request), .real(g.time.timeIntervalSince1970), g.who.map(SQLiteValue.text) ?? .null,
      g.adapter.map(SQLiteValue.text) ?? .null, g.version.map { .integer(Int64($0)) } ?? .null,
      .text(g.prompt), .blob(TokenBlob.encode(g.promptTokens)), .text(g.completion),
      .blob(TokenBlob.encode(g.completionTokens)), .blob(TokenBlob.encode(g.logprobs)),
      .real(s.temperature), .real(s.topP), .integer(Int64(s.topK)), .integer(Int64(bitPattern: s.seed)),
      .integer(Int64(s.maxTokens)), .text(JSONText.array(s.stop)), .text(g.finish.rawValue),
    ])
  }

  /// One round of the writer thread: waits for rows, lets a batch gather for up to
  /// `batchInterval` or `batchSize` rows, and commits it. False once the log is closing.
  func writerStep() -> Bool {
    queue.lock()
    if pending.isEmpty {
      if closing {
        queue.unlock()
        return false
      }
      // Wake at least once a second, so a log nobody references any more is noticed.
      _ = queue.wait(until: Date(timeIntervalSinceNow: 1))
    }
    // Wait for the batch to be due, at most a second per step (the weak-reference check again).
    let stepEnd = Date(timeIntervalSinceNow: 1)
    while !pending.isEmpty && !closing {
      let due = max(pendingSince.addingTimeInterval(configuration.batchInterval), retryAt)
      let now = Date()
      if now >= due || (pending.count >= configuration.batchSize && now >= retryAt) { break }
      if now >= stepEnd {
        queue.unlock()
        return true
      }
      _ = queue.wait(until: min(due, stepEnd))
    }
    let work = !pending.isEmpty && !closing
    let stop = closing
    queue.unlock()
    if stop { return false }
    guard work else { return true }
    do {
      try locked { try withQueuedCommitted {} }
    } catch {
      let e = error as? FeedbackLogError ?? .invalidArgument("\(error)")
      dbLock.lock()
      writeFailures += 1
      lastWriteError = e
      dbLock.unlock()
      queue.lock()
      retryAt = Date(timeIntervalSinceNow: 1)
      queue.unlock()
      if case .closed = e { return false }
      configuration.onWriteError?(e)
    }
    return true
  }
}
