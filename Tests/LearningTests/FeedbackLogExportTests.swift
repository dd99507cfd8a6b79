import Foundation
import Testing

@testable import Learning

/// `lorad log export`'s lines, parsed back with Foundation's JSON parser: TRL's unpaired
/// preference shape for KTO and preference pairs for DPO.
@Suite struct FeedbackLogExportTests {
  static func parse(_ lines: [String]) throws -> [[String: Any]] {
    try lines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
  }

  static func lines(_ log: FeedbackLog, _ format: FeedbackLog.ExportFormat, adapter: String? = nil) throws -> [String] {
    var out: [String] = []
    let n = try log.export(format: format, adapter: adapter) { out.append($0) }
    #expect(n == out.count)
    #expect(out.allSatisfy { !$0.contains("\n") })  // one JSON object per line
    return out
  }

  @Test func ktoLinesHavePromptCompletionAndABooleanLabel() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    let tricky = "line\nbreak \"quoted\" back\\slash \u{1} bell\u{7} tab\t é 漢字 👍🏽 \u{2028}"
    try log.record(LogFixture.generation("r-1", prompt: "P1 " + tricky, completion: "C1 " + tricky))
    try log.record(LogFixture.generation("r-2", adapter: "other", prompt: "P2", completion: "C2"))
    try log.record(LogFixture.generation("r-3", adapter: nil, prompt: "P3", completion: "C3"))
    try log.record(LogFixture.generation("r-unrated", prompt: "P4", completion: "C4"))
    try log.recordFeedback(request: "r-1", rating: .down)
    try log.recordFeedback(request: "r-2", rating: .down)
    try log.recordFeedback(request: "r-3", rating: .up)
    try log.recordFeedback(request: "r-1", rating: .up)  // replaces the down

    let all = try Self.lines(log, .kto)
    let rows = try Self.parse(all)
    #expect(rows.count == 3)
    for r in rows { #expect(Set(r.keys) == ["prompt", "completion", "label"]) }
    // Ordered by the effective event: r-2 (seq 2), r-3 (3), r-1 (4).
    #expect(rows.map { $0["prompt"] as? String } == ["P2", "P3", "P1 " + tricky])
    #expect(rows.map { $0["completion"] as? String } == ["C2", "C3", "C1 " + tricky])
    // JSON booleans, not numbers or strings.
    #expect(all.map { $0.hasSuffix(#""label":false}"#) || $0.hasSuffix(#""label":true}"#) } == [true, true, true])
    #expect(rows.map { $0["label"] as? Bool } == [false, true, true])

    let support = try Self.parse(try Self.lines(log, .kto, adapter: "support"))
    #expect(support.map { $0["prompt"] as? String } == ["P1 " + tricky])
    #expect(try Self.lines(log, .kto, adapter: "nobody").isEmpty)
    try log.close()
  }

  @Test func dpoPairsEveryUpWithEveryDownOfOnePrompt() throws {
    let dir = LogFixture.directory()
    defer { LogFixture.remove(dir) }
    let log = try LogFixture.open(dir)
    try log.record(LogFixture.generation("r-1", prompt: "Q", completion: "good"))
    try log.record(LogFixture.generation("r-2", prompt: "Q", completion: "bad"))
    try log.record(LogFixture.generation("r-3", prompt: "Q", completion: "worse"))
    try log.record(LogFixture.generation("r-4", prompt: "lonely", completion: "only up"))
    try log.record(LogFixture.generation("r-5", prompt: "Q", completion: "flipped"))
    try log.recordFeedback(request: "r-1", rating: .up)
    try log.recordFeedback(request: "r-2", rating: .down)
    try log.recordFeedback(request: "r-3", rating: .down)
    try log.recordFeedback(request: "r-4", rating: .up)
    try log.recordFeedback(request: "r-5", rating: .down)
    try log.recordFeedback(request: "r-5", rating: .up)

    let rows = try Self.parse(try Self.lines(log, .dpo))
    for r in rows { #expect(Set(r.keys) == ["prompt", "chosen", "rejected"]) }
    #expect(rows.allSatisfy { $0["prompt"] as? String == "Q" })
    let pairs = rows.map { "\($0["chosen"]!)>\($0["rejected"]!)" }
    #expect(pairs == ["good>bad", "good>worse", "flipped>bad", "flipped>worse"])
    #expect(try Self.lines(log, .dpo, adapter: "other").isEmpty)
    try log.close()
  }
}
