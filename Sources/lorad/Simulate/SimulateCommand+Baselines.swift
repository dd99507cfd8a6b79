import Foundation
import Learning
import Server

extension SimulateCommand {
  /// `--baselines`: every preference's up-rate on the same held-out answers of the fresh
  /// adapter (whose output equals the base model's), the round 0 of a run without running it.
  func measureBaselines(_ sim: SimulationClient, _ prompts: [String], adapter: String, seconds: () -> Double) throws {
    let answers = try sim.generate(
      heldOutAsks(prompts), adapter: adapter, maxTokens: maxTokens, temperature: temperature)
    let n = Double(answers.count)
    let judged = answers.map { Degeneracy($0.text) }
    let degenerate = Double(judged.filter(\.isDegenerate).count) / n
    Self.say(
      String(
        format: "%d held-out answers (temperature %.2f, %d tokens at most): %.1f%% degenerate; %.0f s", answers.count,
        temperature, maxTokens, 100 * degenerate, seconds()))
    Self.say("preference  liked   up (liked and not degenerate)")
    for p in Preference.allCases {
      let user = SimulatedUser(preference: p)
      let v = answers.map { user.rate($0.text, finish: $0.finish) }
      Self.say(
        RoundRecord.pad(p.rawValue, 10)
          + String(
            format: "  %5.1f%%  %5.1f%%", 100 * Double(v.filter(\.liked).count) / n,
            100 * Double(v.filter(\.up).count) / n))
    }
    guard let out else { return }
    let w = try JSONLWriter(path: out)
    for (a, d) in zip(answers, judged) {
      var o: JSONObject = [
        "prompt": .string(a.prompt), "text": .string(a.text), "finish": .string(a.finish),
        "degenerate": d.reason.map { .string($0) } ?? .null, "unique_word_share": .double(d.uniqueWordShare),
        "max_trigram": .integer(Int64(d.maxTrigramCount)), "copied_share": .double(d.copiedShare),
      ]
      for p in Preference.allCases { o[p.rawValue] = .bool(p.likes(a.text, finish: a.finish)) }
      w.write(.object(o))
    }
    try w.close()
  }
}
