import Foundation
import Learning
import Server

extension SimulateCommand {
  /// `--serving-while-learning`: how much serving keeps of its idle decode throughput while the
  /// learner trains beside it (issue 5: at least 70%). Per repetition: 32 answers rated as
  /// feedback (so the learner has work), a probe batch of 16 answers timed idle, `learn` started
  /// on a second connection, the same probe timed twice while it runs, the learn awaited, the
  /// probe timed idle again. Ratio: the probes during learning over the idle ones. A probe only
  /// counts as "during" when the learner's own run time shows it ran past the probe's end.
  func measureServingWhileLearning(
    _ sim: SimulationClient, learner: SimulationClient, train: [String], adapter: String, user: SimulatedUser,
    repetitions: Int
  ) throws {
    var k: UInt64 = 0
    func asks(_ n: Int) -> [SimulationClient.Ask] {
      (0..<n).map { _ in
        k += 1
        return .init(prompt: train[Int(k) % train.count], seed: seed &+ k)
      }
    }
    let probe = (0..<batch).map {
      SimulationClient.Ask(prompt: train[(7 * $0) % train.count], seed: 1_000 + UInt64($0))
    }
    func timed() throws -> (rate: Double, end: Date) {
      let t0 = Date()
      let a = try sim.generate(probe, adapter: adapter, maxTokens: maxTokens, temperature: temperature)
      let end = Date()
      return (Double(a.reduce(0) { $0 + $1.tokens }) / end.timeIntervalSince(t0), end)
    }
    Self.say(
      "serving while learning: \(batch) answers of up to \(maxTokens) tokens per probe, decode tokens/s (completion tokens / wall)"
    )
    Self.say("rep  idle t/s  learning t/s  ratio   learn s  outcome")
    var ratios: [Double] = []
    var json: [JSONValue] = []
    for r in 1...max(1, repetitions) {
      let rated = try sim.generate(asks(2 * batch), adapter: adapter, maxTokens: maxTokens, temperature: temperature)
      try sim.feedback(rated.map { ($0.request, user.rate($0.text, finish: $0.finish).up) })
      let idle1 = try timed()
      let t0 = Date()
      let id = try learner.startLearn(adapter: adapter)
      usleep(200_000)
      let busy = [try timed(), try timed()]
      let outcome = try learner.learnReply(id: id, since: t0)
      var runSeconds = outcome.seconds
      if case .object(let m)? = outcome.metrics, case .double(let s)? = m["seconds"] { runSeconds = s }
      let idle2 = try timed()
      // The learner's run ended no earlier than t0 + its own duration.
      let covered = busy.filter { $0.end <= t0.addingTimeInterval(runSeconds) }
      let idle = (idle1.rate + idle2.rate) / 2
      guard !covered.isEmpty else {
        Self.say(
          String(
            format: "%3d  %8.1f  %12s  %5s  %8.1f  %@ (ended before a probe did: not counted)", r, idle, "-", "-",
            runSeconds, outcome.outcome))
        continue
      }
      let during = covered.reduce(0) { $0 + $1.rate } / Double(covered.count)
      ratios.append(during / idle)
      Self.say(
        String(
          format: "%3d  %8.1f  %12.1f  %5.2f  %8.1f  %@", r, idle, during, during / idle, runSeconds, outcome.outcome))
      json.append(
        .object([
          "repetition": .integer(Int64(r)), "idle_tps": .double(idle), "learning_tps": .double(during),
          "ratio": .double(during / idle), "learn_seconds": .double(runSeconds), "outcome": .string(outcome.outcome),
        ]))
    }
    let sorted = ratios.sorted()
    let median = sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    Self.say(
      String(
        format: "serving kept %.0f%% of its idle decode throughput while learning (median of %d; goal ≥ 70%%)",
        100 * median, sorted.count))
    if let out {
      let w = try JSONLWriter(path: out)
      for j in json { w.write(j) }
      try w.close()
    }
  }
}
