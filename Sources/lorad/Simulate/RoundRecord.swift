import Foundation
import Server

/// What one round of `lorad simulate` measured: a line of the table, a JSONL object, a point
/// of the plot. Round 0 is the fresh adapter before any feedback.
struct RoundRecord {
  var round: Int
  /// Feedback events sent so far.
  var events: Int
  /// Share of held-out answers the simulated user would thumb up.
  var heldOutUpRate: Double
  /// Share of held-out answers that are degenerate.
  var heldOutDegenerate: Double
  /// Share of held-out answers with the preferred property (degenerate or not).
  var heldOutLiked: Double
  /// Up share of this round's training batch (nil in round 0).
  var trainUpRate: Double?
  /// Adapter version the held-out answers came from.
  var version: Int?
  var ppl: Double
  var basePPL: Double
  var outcome: String
  var reason: String?
  var metrics: JSONValue?
  var learnSeconds: Double
  var roundSeconds: Double
  var wallSeconds: Double
  /// A few held-out answers, for the JSONL (what the curve means in words).
  var examples: [String] = []

  /// Perplexity drift vs the base: ppl / base − 1.
  var drift: Double { ppl / basePPL - 1 }

  static let header =
    "round  events  up(held-out)  degenerate  ppl      drift    learner     v   up(train)  learn s  wall s"

  var line: String {
    let numbers = String(
      format: "%5d  %6d  %11.1f%%  %9.1f%%  %7.3f  %+6.2f%%  ", round, events, 100 * heldOutUpRate,
      100 * heldOutDegenerate, ppl, 100 * drift)
    let v = version.map(String.init) ?? "?"
    let train = trainUpRate.map { String(format: "%.1f%%", 100 * $0) } ?? "-"
    return numbers + Self.pad(outcome, 10) + "  " + Self.pad(v, 2, right: true) + "  " + Self.pad(train, 9, right: true)
      + String(format: "  %7.1f  %6.1f", learnSeconds, wallSeconds)
  }

  static func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, n - s.count))
    return right ? fill + s : s + fill
  }

  func json(preference: String, seed: UInt64) -> JSONObject {
    var o: JSONObject = [
      "round": .integer(Int64(round)), "events": .integer(Int64(events)), "preference": .string(preference),
      "seed": .integer(Int64(clamping: seed)), "heldout_up_rate": .double(heldOutUpRate),
      "heldout_degenerate": .double(heldOutDegenerate), "heldout_liked": .double(heldOutLiked),
      "train_up_rate": trainUpRate.map { .double($0) } ?? .null,
      "version": version.map { .integer(Int64($0)) } ?? .null, "ppl": .double(ppl), "ppl_base": .double(basePPL),
      "ppl_drift": .double(drift), "outcome": .string(outcome), "reason": reason.map { .string($0) } ?? .null,
      "learn_seconds": .double(learnSeconds), "round_seconds": .double(roundSeconds),
      "wall_seconds": .double(wallSeconds), "examples": .array(examples.map { .string($0) }),
    ]
    if let metrics { o["metrics"] = metrics }
    return o
  }

  /// The curve of `records` as a line chart: held-out up-rate, degenerate share and ppl drift
  /// (×10, so the 5% bound sits at 50%) against feedback events.
  static func plot(_ records: [RoundRecord], preference: Preference) -> PNGImage {
    let plot = LinePlot(
      title: "LORAD SIMULATE - PREFERENCE \(preference.rawValue)", xLabel: "FEEDBACK EVENTS",
      series: [
        .init(
          label: "UP-RATE (HELD-OUT)", color: .init(r: 31, g: 119, b: 180),
          points: records.map { (Double($0.events), $0.heldOutUpRate) }),
        .init(
          label: "DEGENERATE", color: .init(r: 214, g: 39, b: 40),
          points: records.map { (Double($0.events), $0.heldOutDegenerate) }),
        .init(
          label: "PPL DRIFT X10", color: .init(r: 44, g: 160, b: 44),
          points: records.map { (Double($0.events), 10 * $0.drift) }),
      ])
    return plot.render()
  }
}
