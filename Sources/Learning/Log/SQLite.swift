import CSQLite

// The one file that imports CSQLite: a thin wrapper over a connection and its prepared
// statements. Every SQLite result code other than OK/ROW/DONE becomes a thrown `SQLiteError`
// carrying sqlite3_errmsg; lock contention (SQLITE_BUSY) is waited out by the busy timeout
// set at open, and only surfaces as an error when it outlasts it.

/// A failed SQLite call: the result code, SQLite's own message (sqlite3_errmsg), what lorad
/// was doing, and the database file.
public struct SQLiteError: Error, CustomStringConvertible, Equatable, Sendable {
  /// The extended result code (e.g. 2067 = SQLITE_CONSTRAINT_UNIQUE); `primaryCode` is its low byte.
  public var code: Int32
  public var message: String
  /// The operation (often the SQL) that failed.
  public var operation: String
  public var path: String

  public var primaryCode: Int32 { code & 0xff }
  /// A UNIQUE, FOREIGN KEY, CHECK or NOT NULL constraint refused the row: retrying cannot help.
  public var isConstraint: Bool { primaryCode == SQLITE_CONSTRAINT }
  /// A UNIQUE constraint refused the row (e.g. a request id already logged).
  public var isUniqueViolation: Bool { code == SQLITE_CONSTRAINT | (8 << 8) }  // SQLITE_CONSTRAINT_UNIQUE

  public var description: String {
    "\(path): \(operation): \(message) (SQLite code \(code))" + (hint.map { "; \($0)" } ?? "")
  }

  /// What to do about the common failures.
  var hint: String? {
    switch primaryCode {
    case SQLITE_BUSY, SQLITE_LOCKED:
      return
        "another process held the database longer than the busy timeout; is a second lorad using this state directory?"
    case SQLITE_FULL: return "the disk is full; free space and retry"
    case SQLITE_READONLY:
      return "the database or its directory is read-only; fix the permissions of the state directory"
    case SQLITE_CANTOPEN:
      return "cannot open the file; check that the state directory exists and is writable (--state DIR)"
    case SQLITE_CORRUPT, SQLITE_NOTADB:
      return "the file is not a valid lorad database; move it aside and lorad starts a new one"
    case SQLITE_IOERR: return "an I/O error; check the disk and the file system"
    default: return nil
    }
  }
}

/// A value to bind to a statement parameter.
enum SQLiteValue: Sendable, Equatable {
  case null
  case integer(Int64)
  case real(Double)
  case text(String)
  case blob([UInt8])
}

/// `SQLITE_TRANSIENT`: SQLite copies bound bytes before the bind call returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection. Not thread-safe: its owner serialises every call (`FeedbackLog`
/// does so with its `dbLock`); the connection is opened in multi-thread mode (NOMUTEX).
final class SQLiteConnection {
  let path: String
  private var db: OpaquePointer?

  /// Opens (and with `create`, creates) the database at `path`, with extended result codes
  /// and a busy timeout: a lock held by another connection is retried for `busyTimeoutMilliseconds`.
  init(path: String, readOnly: Bool = false, create: Bool = true, busyTimeoutMilliseconds: Int32 = 5000) throws {
    self.path = path
    var flags = SQLITE_OPEN_NOMUTEX
    flags |= readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE
    if create && !readOnly { flags |= SQLITE_OPEN_CREATE }
    var handle: OpaquePointer?
    let rc = sqlite3_open_v2(path, &handle, flags, nil)
    guard rc == SQLITE_OK, let handle else {
      let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
      sqlite3_close_v2(handle)
      throw SQLiteError(code: rc, message: message, operation: "open", path: path)
    }
    db = handle
    sqlite3_extended_result_codes(handle, 1)
    sqlite3_busy_timeout(handle, busyTimeoutMilliseconds)
  }

  deinit { close() }

  /// Closes the connection; statements still alive are finalized when they go (close_v2).
  func close() {
    if let db { sqlite3_close_v2(db) }
    db = nil
  }

  private func handle(_ operation: String) throws -> OpaquePointer {
    guard let db else {
      throw SQLiteError(code: SQLITE_MISUSE, message: "the connection is closed", operation: operation, path: path)
    }
    return db
  }

  /// Turns a result code into a thrown error (OK, ROW and DONE pass).
  func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws {
    if rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE { return }
    let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
    throw SQLiteError(code: rc, message: message, operation: operation(), path: path)
  }

  /// Runs one or more statements that return no rows of interest (schema, pragmas, BEGIN).
  func execute(_ sql: String) throws {
    let db = try handle(sql)
    try check(sqlite3_exec(db, sql, nil, nil, nil), sql)
  }

  /// Compiles one statement.
  func prepare(_ sql: String) throws -> SQLiteStatement {
    let db = try handle(sql)
    var stmt: OpaquePointer?
    try check(sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil), sql)
    guard let stmt else {
      throw SQLiteError(code: SQLITE_MISUSE, message: "empty statement", operation: sql, path: path)
    }
    return SQLiteStatement(stmt, connection: self, sql: sql)
  }

  /// The first column of the first row of `sql` as an integer (e.g. `PRAGMA user_version`).
  func scalarInt(_ sql: String, _ values: [SQLiteValue] = []) throws -> Int64? {
    let s = try prepare(sql)
    try s.bind(values)
    return try s.step() ? (s.isNull(0) ? nil : s.int64(0)) : nil
  }

  /// The first column of the first row of `sql` as text (e.g. `PRAGMA journal_mode`).
  func scalarText(_ sql: String) throws -> String? {
    let s = try prepare(sql)
    return try s.step() ? s.text(0) : nil
  }

  /// Switches the database to write-ahead logging (persistent in the file) and checks it took:
  /// some file systems cannot host a WAL.
  func enableWAL() throws {
    let mode = try scalarText("PRAGMA journal_mode = WAL")?.lowercased()
    guard mode == "wal" else {
      throw SQLiteError(
        code: SQLITE_ERROR, message: "the journal mode stayed '\(mode ?? "?")' instead of 'wal'",
        operation: "PRAGMA journal_mode = WAL", path: path)
    }
  }

  /// True while a transaction is open.
  var inTransaction: Bool { db.map { sqlite3_get_autocommit($0) == 0 } ?? false }

  /// Runs `body` inside a transaction: committed when it returns, rolled back when it throws.
  /// `immediate` takes the write lock at BEGIN, so a busy database waits at the start rather
  /// than failing in the middle. Inside an open transaction `body` simply joins it.
  func transaction<T>(immediate: Bool = true, _ body: () throws -> T) throws -> T {
    if inTransaction { return try body() }
    try execute(immediate ? "BEGIN IMMEDIATE" : "BEGIN")
    do {
      let result = try body()
      try execute("COMMIT")
      return result
    } catch {
      if let db, sqlite3_get_autocommit(db) == 0 { _ = sqlite3_exec(db, "ROLLBACK", nil, nil, nil) }
      throw error
    }
  }

  /// Rows changed by the last INSERT, UPDATE or DELETE.
  var changes: Int { db.map { Int(sqlite3_changes64($0)) } ?? 0 }
  /// The rowid of the last INSERT.
  var lastInsertRowID: Int64 { db.map { sqlite3_last_insert_rowid($0) } ?? 0 }
}

/// A prepared statement: bind parameters (1-based), step through rows, read columns (0-based).
/// Used by one thread at a time, as its connection is.
final class SQLiteStatement {
  private let stmt: OpaquePointer
  private let connection: SQLiteConnection
  let sql: String

  fileprivate init(_ stmt: OpaquePointer, connection: SQLiteConnection, sql: String) {
    self.stmt = stmt
    self.connection = connection
    self.sql = sql
  }

  deinit { sqlite3_finalize(stmt) }

  /// Resets the statement and binds `values` to parameters 1, 2, …
  func bind(_ values: [SQLiteValue]) throws {
    sqlite3_reset(stmt)
    sqlite3_clear_bindings(stmt)
    for (i, v) in values.enumerated() { try bind(v, at: Int32(i + 1)) }
  }

  func bind(_ value: SQLiteValue, at index: Int32) throws {
    let rc: Int32
    switch value {
    case .null: rc = sqlite3_bind_null(stmt, index)
    case .integer(let i): rc = sqlite3_bind_int64(stmt, index, i)
    case .real(let d): rc = sqlite3_bind_double(stmt, index, d)
    case .text(let s):
      // Explicit length: text with NUL bytes survives; an empty string stays text, not NULL.
      let bytes = Array(s.utf8)
      rc =
        bytes.isEmpty
        ? sqlite3_bind_text(stmt, index, "", 0, transient)
        : bytes.withUnsafeBufferPointer { b in
          b.withMemoryRebound(to: CChar.self) {
            sqlite3_bind_text(stmt, index, $0.baseAddress, Int32(b.count), transient)
          }
        }
    case .blob(let bytes):
      // A NULL pointer would bind NULL, so an empty blob is a zero-length zeroblob.
      rc =
        bytes.isEmpty
        ? sqlite3_bind_zeroblob(stmt, index, 0)
        : bytes.withUnsafeBytes { sqlite3_bind_blob(stmt, index, $0.baseAddress, Int32($0.count), transient) }
    }
    try connection.check(rc, "bind parameter \(index) of \(sql)")
  }

  /// Advances to the next row: true when there is one, false when the statement is done.
  @discardableResult
  func step() throws -> Bool {
    let rc = sqlite3_step(stmt)
    if rc == SQLITE_ROW { return true }
    if rc == SQLITE_DONE { return false }
    sqlite3_reset(stmt)  // a failed step leaves the statement to be reset; the error is reported below
    try connection.check(rc, sql)
    return false
  }

  /// Binds `values`, runs the statement to completion and resets it.
  func run(_ values: [SQLiteValue]) throws {
    try bind(values)
    while try step() {}
    sqlite3_reset(stmt)
  }

  /// Ends the current use so the statement holds no read lock.
  func reset() { sqlite3_reset(stmt) }

  func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }
  func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }
  func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(stmt, column)) }
  func double(_ column: Int32) -> Double { sqlite3_column_double(stmt, column) }
  func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }
  func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }

  func text(_ column: Int32) -> String {
    guard let p = sqlite3_column_text(stmt, column) else { return "" }
    let n = Int(sqlite3_column_bytes(stmt, column))
    return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
  }

  /// The column's bytes (empty for NULL or a zero-length blob), read without a copy.
  func withBlob<T>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
    let p = sqlite3_column_blob(stmt, column)  // before _bytes, as SQLite's docs ask
    let n = Int(sqlite3_column_bytes(stmt, column))
    guard n > 0, let p else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
    return try body(UnsafeRawBufferPointer(start: p, count: n))
  }
}
