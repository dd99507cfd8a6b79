import Foundation
import Testing

@testable import Learning

/// What the learner reads: effective examples since a mark, counts per adapter, marks, runs,
/// the held-out split, and retention.
@Suite struct FeedbackLogLearnerTests {
  @Test func examplesSinceAMarkAndReRatings() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    try log.record(LogFixture.generation("r-1", n: 1, adapter: "a", version: 0))
    try log.record(LogFixture.generation("r-2", n: 2, adapter: "a", version: 1))
    try log.record(LogFixture.generation("r-3", n: 3, adapter: "b", version: 0))
    try log.record(LogFixture.generation("r-4", n: 4, adapter: nil))
    try log.record(LogFixture.generation("r-5", n: 5, adapter: "a", version: 1))
    try log.recordFeedback(request: "r-1", rating: .up)  // seq 1
    try log.recordFeedback(request: "r-2", rating: .down)  // 2
    try log.recordFeedback(request: "r-3", rating: .up)  // 3
    try log.recordFeedback(request: "r-4", rating: .down)  // 4

    let a = try log.feedbackExamples(adapter: "a")
    #expect(a.map(\.request) == ["r-1", "r-2"])
    #expect(a.map(\.version) == [0, 1])
    #expect(a.map(\.label) == [true, false])
    let g2 = LogFixture.generation("r-2", n: 2, adapter: "a", version: 1)
    #expect(a[1].promptTokens == g2.promptTokens && a[1].completionTokens == g2.completionTokens)
    #expect(a[1].logprobs == g2.logprobs && a[1].prompt == g2.prompt && a[1].completion == g2.completion)
    #expect(try log.feedbackExamples(adapter: nil).map(\.request) == ["r-4"])

    // The learner consumed a's feedback up to seq 2; then r-1 is re-rated and r-5 rated.
    try log.setConsumedMark(adapter: "a", seq: 2)
    #expect(try log.feedbackExamples(adapter: "a", since: 2).isEmpty)
    try log.recordFeedback(request: "r-1", rating: .down)  // 5
    try log.recordFeedback(request: "r-5", rating: .up)  // 6
    let fresh = try log.feedbackExamples(adapter: "a", since: try log.consumedMark(adapter: "a"))
    #expect(fresh.map(\.request) == ["r-1", "r-5"])
    #expect(fresh.map(\.seq) == [5, 6])
    #expect(fresh.map(\.rating) == [.down, .up])
    #expect(try log.feedbackExamples(adapter: "a", limit: 1).map(\.request) == ["r-2"])

    let counts = try log.newFeedbackCounts()
    #expect(
      counts == [
        AdapterFeedbackCount(adapter: "a", up: 1, down: 1, latestSeq: 6),
        AdapterFeedbackCount(adapter: "b", up: 1, down: 0, latestSeq: 3),
      ])
    try log.setConsumedMark(adapter: "a", seq: 6)
    try log.setConsumedMark(adapter: "b", seq: 3)
    #expect(try log.newFeedbackCounts().isEmpty)
    #expect(try log.latestFeedbackSeq() == 6)
    #expect(throws: FeedbackLogError.self) { try log.setConsumedMark(adapter: "a", seq: -1) }

    let st = try log.stats()
    #expect(st.adapters.map(\.adapter) == [nil, "a", "b"])
    #expect(st.adapters.map(\.generations) == [1, 3, 1])
    #expect(st.adapters[1].up == 1 && st.adapters[1].down == 2 && st.adapters[1].new == 0)
    try log.close()
  }

  @Test func learnerRunsAreRecordedNewestFirst() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    let t = Date(timeIntervalSince1970: 1_790_000_000)
    let r1 = try log.recordLearnerRun(
      LearnerRun(
        adapter: "a", fromVersion: 0, toVersion: 1, outcome: .promoted, reason: "held-out loss 0.61 < 0.64",
        metrics: #"{"loss":0.61,"kl":0.02}"#, time: t))
    let r2 = try log.recordLearnerRun(
      LearnerRun(adapter: "a", fromVersion: 1, toVersion: nil, outcome: .nothing, reason: "3 new ratings < 8", time: t))
    try log.recordLearnerRun(
      LearnerRun(adapter: "b", fromVersion: 0, toVersion: 1, outcome: .rejected, reason: "KL 0.4 > 0.1", time: t))
    #expect(r2.id > r1.id)
    #expect(try log.learnerRuns(adapter: "a") == [r2, r1])
    #expect(try log.learnerRuns().map(\.adapter) == ["b", "a", "a"])
    #expect(try log.learnerRuns(limit: 1).map(\.outcome) == [.rejected])
    #expect(throws: FeedbackLogError.self) {
      try log.recordLearnerRun(
        LearnerRun(
          adapter: "a", fromVersion: 0, toVersion: nil, outcome: .nothing, reason: "",
          metrics: "{not json"))
    }
    try log.close()
  }

  @Test func heldOutSplitIsAFixedHashOfTheRequestId() throws {
    // Positions from an independent implementation: Fixtures/make_held_out.py.
    let url = try #require(Bundle.module.url(forResource: "held_out", withExtension: "json", subdirectory: "Fixtures"))
    let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [[String: Any]]
    #expect(reference.count == 48)
    for r in reference {
      let request = r["request"] as! String
      #expect(HeldOutSplit.hash(request: request) == UInt64(r["hash"] as! String, radix: 16), "\(request)")
      let position = (r["position"] as! NSNumber).doubleValue
      #expect(abs(HeldOutSplit.position(request: request) - position) < 1e-15, "\(request)")
    }
    let share = (0..<20_000).filter { HeldOutSplit.isHeldOut(request: "r-\($0)", fraction: 0.2) }.count
    #expect((3_700...4_300).contains(share))
    #expect(!HeldOutSplit.isHeldOut(request: "r-1", fraction: 0) && HeldOutSplit.isHeldOut(request: "r-1", fraction: 1))
  }

  @Test func pruneDropsOldUnratedGenerationsOnly() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir) { $0.retention = 30 * 86_400 }
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let old = now.addingTimeInterval(-100 * 86_400)
    try log.record(LogFixture.generation("r-old-rated", time: old))
    try log.record(LogFixture.generation("r-old-1", time: old))
    try log.record(LogFixture.generation("r-old-2", time: old))
    try log.record(LogFixture.generation("r-recent", time: now.addingTimeInterval(-86_400)))
    try log.recordFeedback(request: "r-old-rated", rating: .up)
    #expect(try log.prune(olderThan: now.addingTimeInterval(-200 * 86_400)) == 0)
    #expect(try log.pruneExpired(now: now) == 2)
    #expect(try log.generation(request: "r-old-1") == nil && log.generation(request: "r-old-2") == nil)
    #expect(try log.generation(request: "r-old-rated") != nil && log.generation(request: "r-recent") != nil)
    #expect(try log.feedbackHistory(request: "r-old-rated").count == 1)
    #expect(throws: FeedbackLogError.unknownRequest("r-old-1")) {
      try log.recordFeedback(request: "r-old-1", rating: .up)
    }
    try log.close()
    let keepAll = try LogFixture.open(dir) { $0.retention = nil }
    #expect(try keepAll.pruneExpired(now: now.addingTimeInterval(1e9)) == 0)
    try keepAll.close()
  }
}
