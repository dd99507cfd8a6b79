import Foundation
import Model
import Testing

@testable import Learning

/// The log's storage: every field round trips, ratings replace and keep history, refusals are
/// typed, and what was committed survives a reopen and a crash.
@Suite struct FeedbackLogTests {
  @Test func everyFieldRoundTrips() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    var weird = LogFixture.generation("r-2", n: 2, who: "alice", adapter: nil)
    weird.prompt = "quotes \" backslash \\ NUL \u{0} tab \t emoji 👩‍👩‍👧 CJK 漢字"
    weird.completion = ""
    weird.completionTokens = []
    weird.logprobs = []
    weird.promptTokens = []
    weird.sampling.stop = []
    weird.sampling.seed = 0
    weird.finish = .cancelled
    let records = [LogFixture.generation("r-1", n: 1, who: nil), weird]
    for r in records { try log.record(r) }
    for r in records { #expect(try log.generation(request: r.request) == r) }
    #expect(try log.generation(request: "r-missing") == nil)
    try log.close()
  }

  @Test func blobsAreLittleEndianInt32AndFloat32() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    var g = LogFixture.generation("r-blob")
    g.promptTokens = [1, 256, -1]
    g.completionTokens = [0x0102_0304]
    g.logprobs = [1.0]
    try log.record(g)
    try log.flush()
    let db = try SQLiteConnection(path: log.path)
    let s = try db.prepare("SELECT hex(prompt_tokens), hex(completion_tokens), hex(logprobs) FROM generations")
    #expect(try s.step())
    #expect(s.text(0) == "01000000" + "00010000" + "FFFFFFFF")
    #expect(s.text(1) == "04030201")
    #expect(s.text(2) == "0000803F")  // 1.0f = 0x3F800000
    try log.close()
  }

  @Test func laterRatingReplacesAndHistoryKeepsBoth() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    try log.record(LogFixture.generation("r-1", who: "alice"))
    let first = try log.recordFeedback(request: "r-1", rating: .up, note: "good", who: "alice")
    let second = try log.recordFeedback(request: "r-1", rating: .down, who: "alice")
    #expect(second.seq > first.seq)
    let history = try log.feedbackHistory(request: "r-1")
    #expect(history.map(\.rating) == [.up, .down])
    #expect(history.map(\.note) == ["good", nil])
    #expect(history.allSatisfy { $0.who == "alice" && $0.request == "r-1" })
    #expect(try log.effectiveFeedback(request: "r-1")?.rating == .down)
    #expect(try log.effectiveFeedback(request: "r-1")?.seq == second.seq)
    let examples = try log.feedbackExamples(adapter: "support")
    #expect(examples.count == 1)
    #expect(examples.first?.rating == .down && examples.first?.label == false)
    let st = try log.stats()
    #expect(st.feedbackEvents == 2 && st.ratedRequests == 1)
    try log.close()
  }

  @Test func unknownRequestIsRefused() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    try log.record(LogFixture.generation("r-1"))
    #expect(throws: FeedbackLogError.unknownRequest("r-nope")) {
      try log.recordFeedback(request: "r-nope", rating: .up)
    }
    // The queued generation committed with the refused feedback was not lost.
    #expect(try log.generation(request: "r-1") != nil)
    #expect(try log.latestFeedbackSeq() == 0)
    try log.close()
  }

  @Test func onlyTheRequesterMayRate() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    try log.record(LogFixture.generation("r-a", who: "alice"))
    try log.record(LogFixture.generation("r-open", who: nil))
    for who in ["bob", nil] as [String?] {
      #expect(throws: FeedbackLogError.notYourRequest(request: "r-a")) {
        try log.recordFeedback(request: "r-a", rating: .up, who: who)
      }
    }
    try log.recordFeedback(request: "r-a", rating: .up, who: "alice")
    try log.recordFeedback(request: "r-open", rating: .down, who: "bob")
    try log.recordFeedback(request: "r-open", rating: .up, who: nil)
    #expect(try log.feedbackHistory(request: "r-a").count == 1)
    #expect(try log.feedbackHistory(request: "r-open").map(\.who) == ["bob", nil])
    #expect("\(FeedbackLogError.notYourRequest(request: "r-a"))".contains("alice") == false)
    try log.close()
  }

  @Test func feedbackOnAStillQueuedGenerationWorks() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir) { $0.batchInterval = 60 }  // the writer would wait a minute
    try log.record(LogFixture.generation("r-q"))
    #expect(log.queuedCount == 1)
    let e = try log.recordFeedback(request: "r-q", rating: .up)
    #expect(e.seq == 1)
    #expect(log.queuedCount == 0)
    #expect(try log.feedbackExamples(adapter: "support").map(\.request) == ["r-q"])
    try log.close()
  }

  @Test func writerCommitsWithinTheBatchIntervalUnasked() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir) { $0.batchInterval = 0.05 }
    let other = try SQLiteConnection(path: log.path)  // a second connection sees only commits
    for i in 0..<5 { try log.record(LogFixture.generation("r-\(i)", n: i)) }
    let start = Date()
    var seen: Int64 = 0
    while seen < 5 && Date().timeIntervalSince(start) < 5 {
      Thread.sleep(forTimeInterval: 0.01)
      seen = try other.scalarInt("SELECT count(*) FROM generations") ?? 0
    }
    #expect(seen == 5)
    #expect(log.queuedCount == 0)
    try log.close()
  }

  @Test func duplicateRequestIsDroppedAndReported() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let reported = ReportBox()
    let log = try LogFixture.open(dir) { c in c.onWriteError = { reported.add($0) } }
    try log.record(LogFixture.generation("r-dup", n: 1))
    try log.record(LogFixture.generation("r-dup", n: 2))
    try log.flush()
    #expect(try log.generation(request: "r-dup")?.completion == "Answer 1.")
    let st = try log.stats()
    #expect(st.generations == 1 && st.written == 1 && st.dropped == 1)
    #expect(reported.all == [.duplicateRequest("r-dup")])
    try log.close()
  }

  @Test func invalidRecordsAreRefusedAtOnce() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    var g = LogFixture.generation("r-bad")
    g.logprobs.removeLast()
    #expect(throws: FeedbackLogError.self) { try log.record(g) }
    g = LogFixture.generation("r-bad")
    g.version = nil
    #expect(throws: FeedbackLogError.self) { try log.record(g) }
    #expect(log.queuedCount == 0)
    try log.close()
    #expect(throws: FeedbackLogError.closed(path: log.path)) { try log.record(LogFixture.generation("r-late")) }
  }

  @Test func reopenAfterCloseKeepsEverything() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let records = (0..<100).map { LogFixture.generation("r-\($0)", n: $0, who: $0 % 3 == 0 ? "alice" : nil) }
    do {
      let log = try LogFixture.open(dir) { $0.batchInterval = 60 }
      for r in records { try log.record(r) }
      try log.recordFeedback(request: "r-3", rating: .up, note: "kept", who: "alice")
      try log.setConsumedMark(adapter: "support", seq: 1)
      try log.recordLearnerRun(
        LearnerRun(
          adapter: "support", fromVersion: 3, toVersion: 4, outcome: .promoted, reason: "better", metrics: "{}"))
      try log.close()  // 99 generations still queued: close commits them
    }
    let log = try LogFixture.open(dir)
    #expect(try log.schemaVersion() == LogSchema.current)
    for r in records { #expect(try log.generation(request: r.request) == r) }
    #expect(try log.feedbackHistory(request: "r-3").map(\.note) == ["kept"])
    #expect(try log.consumedMark(adapter: "support") == 1)
    #expect(try log.learnerRuns().map(\.toVersion) == [4])
    try log.close()
  }

  @Test func walModeAndFullSync() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    #expect(try log.journalMode() == "wal")
    #expect(try log.locked { try log.db.scalarInt("PRAGMA synchronous") } == 2)  // FULL
    try log.record(LogFixture.generation("r-1"))
    try log.recordFeedback(request: "r-1", rating: .up)
    let wal = try FileManager.default.attributesOfItem(atPath: log.path + "-wal")[.size] as? Int ?? 0
    #expect(wal > 0)  // the commit went to the write-ahead log
    try log.close()
  }

  /// What a kill -9 leaves: the database and its WAL as they are on disk, never closed. A copy
  /// of the two files (no shared-memory index) opens with every acknowledged feedback in it.
  @Test func acknowledgedFeedbackSurvivesACrash() throws {
    let dir = LogFixture.directory()
    let copy = LogFixture.directory("copy")
    defer {
      LogFixture.remove(dir)
      LogFixture.remove(copy)
    }
    let log = try LogFixture.open(dir) { $0.batchInterval = 60 }
    try log.record(LogFixture.generation("r-crash", who: "alice"))
    try log.recordFeedback(request: "r-crash", rating: .down, note: "wrong", who: "alice")
    let fm = FileManager.default
    #expect(fm.fileExists(atPath: log.path + "-wal"))
    for suffix in ["", "-wal"] {
      try fm.copyItem(atPath: log.path + suffix, toPath: copy + "/" + FeedbackLog.fileName + suffix)
    }
    let recovered = try FeedbackLog(path: copy + "/" + FeedbackLog.fileName, create: false)
    #expect(try recovered.feedbackHistory(request: "r-crash").map(\.note) == ["wrong"])
    #expect(try recovered.generation(request: "r-crash") == LogFixture.generation("r-crash", who: "alice"))
    try recovered.close()
    try log.close()
  }

  @Test func newerSchemaAndMissingFileAreRefused() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let path = dir + "/" + FeedbackLog.fileName
    #expect(throws: FeedbackLogError.noDatabase(path: path)) { try FeedbackLog(path: path, create: false) }
    do {
      let db = try SQLiteConnection(path: path)
      try db.execute("PRAGMA user_version = 99")
    }
    #expect(throws: FeedbackLogError.newerSchema(path: path, found: 99, known: LogSchema.current)) {
      try FeedbackLog(path: path)
    }
  }

  @Test func sqliteErrorsCarryTheMessageAndAHint() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let path = dir + "/no/such/dir/lorad.db"
    do {
      _ = try FeedbackLog(path: path)
      Issue.record("opened a database in a missing directory")
    } catch FeedbackLogError.storage(let e) {
      #expect(e.path == path)
      #expect(e.primaryCode == 14)  // SQLITE_CANTOPEN
      #expect("\(e)".contains("state directory"))
    }
  }

  @Test func concurrentRecordsAndRatingsAllLand() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir) { $0.batchSize = 16 }
    let failures = ReportBox()
    DispatchQueue.concurrentPerform(iterations: 4) { t in
      for i in 0..<150 {
        let id = "r-\(t)-\(i)"
        do {
          try log.record(LogFixture.generation(id, n: i, who: "user\(t)"))
          if i % 10 == 0 { try log.recordFeedback(request: id, rating: i % 20 == 0 ? .up : .down, who: "user\(t)") }
        } catch {
          failures.add(error as? FeedbackLogError ?? .invalidArgument("\(error)"))
        }
      }
    }
    #expect(failures.all.isEmpty)
    let st = try log.stats()
    #expect(st.generations == 600 && st.feedbackEvents == 60 && st.dropped == 0 && st.queued == 0)
    try log.close()
  }
}

/// Collects errors from other threads.
final class ReportBox: @unchecked Sendable {  // `items` under `lock`
  private let lock = NSLock()
  private var items: [FeedbackLogError] = []
  func add(_ e: FeedbackLogError) { lock.withLock { items.append(e) } }
  var all: [FeedbackLogError] { lock.withLock { items } }
}

@Suite struct FeedbackLogLifetimeTests {
  /// A log nobody closes commits its queue when its last reference goes (the writer thread
  /// holds it only weakly, and notices within a second).
  @Test func droppingTheLastReferenceCommitsTheQueue() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let path: String
    do {
      let log = try LogFixture.open(dir) { $0.batchInterval = 600 }
      try log.record(LogFixture.generation("r-dropped"))
      path = log.path
      Thread.sleep(forTimeInterval: 0.1)  // the writer is now waiting, holding the log
    }
    let other = try SQLiteConnection(path: path)
    let start = Date()
    var seen: Int64 = 0
    while seen == 0 && Date().timeIntervalSince(start) < 5 {
      Thread.sleep(forTimeInterval: 0.02)
      seen = try other.scalarInt("SELECT count(*) FROM generations") ?? 0
    }
    #expect(seen == 1)
  }
}

@Suite struct FeedbackLogBusyTests {
  /// Another connection holding the write lock (another process, e.g. a migration) is waited
  /// out within the busy timeout, and reported as a typed, explained error beyond it.
  @Test func aHeldWriteLockIsWaitedOutThenReported() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir) { $0.busyTimeoutMilliseconds = 2_000 }
    try log.record(LogFixture.generation("r-1"))
    try log.flush()
    let path = log.path
    let locked = DispatchSemaphore(value: 0)
    let released = DispatchSemaphore(value: 0)
    Thread.detachNewThread {  // another writer, on its own connection and thread
      let other = try! SQLiteConnection(path: path)
      try! other.execute("BEGIN IMMEDIATE")
      locked.signal()
      Thread.sleep(forTimeInterval: 0.2)
      try! other.execute("COMMIT")
      released.signal()
    }
    locked.wait()
    let start = Date()
    try log.recordFeedback(request: "r-1", rating: .up)
    #expect(Date().timeIntervalSince(start) >= 0.15)
    released.wait()
    try log.close()

    let impatient = try LogFixture.open(dir) { $0.busyTimeoutMilliseconds = 50 }
    let other = try SQLiteConnection(path: path)
    try other.execute("BEGIN IMMEDIATE")
    do {
      try impatient.recordFeedback(request: "r-1", rating: .down)
      Issue.record("wrote through a held write lock")
    } catch FeedbackLogError.storage(let e) {
      #expect(e.primaryCode == 5)  // SQLITE_BUSY
      #expect("\(e)".contains("busy timeout"))
    }
    try other.execute("COMMIT")
    #expect(try impatient.feedbackHistory(request: "r-1").map(\.rating) == [.up])
    try impatient.close()
  }
}
