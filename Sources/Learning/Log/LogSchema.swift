/// The log's schema, versioned with `PRAGMA user_version`: `migrations[i]` takes a database
/// from version i to i + 1, each in one transaction together with the version bump. Add a
/// migration at the end; never edit one that has shipped.
enum LogSchema {
  static let migrations: [String] = [
    // 0 → 1: generations, feedback events, the effective rating, learner marks and runs.
    """
    CREATE TABLE generations (
      request TEXT NOT NULL UNIQUE,        -- server-assigned id, r-…
      time REAL NOT NULL,                  -- Unix seconds
      who TEXT,                            -- auth identity, NULL when keys are off
      adapter TEXT,                        -- NULL: the base model
      version INTEGER,                     -- the adapter's exact version; NULL with adapter
      prompt TEXT NOT NULL,
      prompt_tokens BLOB NOT NULL,         -- little-endian Int32 × prompt_len
      completion TEXT NOT NULL,
      completion_tokens BLOB NOT NULL,     -- little-endian Int32 × completion_len
      logprobs BLOB NOT NULL,              -- little-endian Float32 × completion_len
      temperature REAL NOT NULL,
      top_p REAL NOT NULL,
      top_k INTEGER NOT NULL,
      seed INTEGER NOT NULL,               -- the UInt64 seed's bit pattern
      max_tokens INTEGER NOT NULL,
      stop TEXT NOT NULL,                  -- JSON array of strings
      finish TEXT NOT NULL CHECK (finish IN ('stop', 'length', 'cancelled')),
      CHECK ((adapter IS NULL) = (version IS NULL))
    );
    CREATE INDEX generations_by_time ON generations(time);
    CREATE INDEX generations_by_adapter ON generations(adapter, version);

    -- Every rating event; AUTOINCREMENT so a sequence number is never reused.
    CREATE TABLE feedback (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      request TEXT NOT NULL REFERENCES generations(request),
      rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
      note TEXT,
      time REAL NOT NULL,
      who TEXT
    );
    CREATE INDEX feedback_by_request ON feedback(request, seq);

    -- The effective rating of a request: its latest event.
    CREATE VIEW effective_feedback AS
      SELECT f.* FROM feedback f
      WHERE f.seq = (SELECT max(g.seq) FROM feedback g WHERE g.request = f.request);

    -- How far the learner has consumed each adapter's feedback (an event sequence number).
    CREATE TABLE learner_marks (
      adapter TEXT PRIMARY KEY,
      seq INTEGER NOT NULL,
      time REAL NOT NULL
    );

    CREATE TABLE learner_runs (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      adapter TEXT NOT NULL,
      from_version INTEGER NOT NULL,
      to_version INTEGER,
      outcome TEXT NOT NULL CHECK (outcome IN ('promoted', 'rejected', 'nothing')),
      reason TEXT NOT NULL,
      metrics TEXT NOT NULL,               -- JSON
      time REAL NOT NULL
    );
    CREATE INDEX learner_runs_by_adapter ON learner_runs(adapter, id);
    """
  ]

  /// The version this lorad writes.
  static var current: Int { migrations.count }

  /// Brings `db` to `current`, or throws `newerSchema` for a file from a newer lorad.
  static func migrate(_ db: SQLiteConnection) throws {
    let found = Int(try db.scalarInt("PRAGMA user_version") ?? 0)
    if found > current { throw FeedbackLogError.newerSchema(path: db.path, found: found, known: current) }
    for v in found..<current {
      try db.transaction {
        // Re-read inside the write lock: another process may have migrated meanwhile.
        let now = Int(try db.scalarInt("PRAGMA user_version") ?? 0)
        guard now == v else { return }
        try db.execute(migrations[v])
        try db.execute("PRAGMA user_version = \(v + 1)")
      }
    }
  }
}
