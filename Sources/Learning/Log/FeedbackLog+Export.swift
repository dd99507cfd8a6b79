import Foundation

/// Export of effective ratings as JSON lines for TRL's trainers.
extension FeedbackLog {
  /// The shapes `lorad log export` writes.
  public enum ExportFormat: String, Sendable, CaseIterable {
    /// TRL's unpaired preference type (KTOTrainer): `{"prompt","completion","label"}`, one line
    /// per effective rating, label true for thumbs-up.
    case kto
    /// TRL's preference type (DPOTrainer): `{"prompt","chosen","rejected"}`, one line per pair
    /// of an up-rated and a down-rated completion of the same prompt text.
    case dpo
  }

  /// Calls `line` with each JSON line (no trailing newline) of the export, in event order;
  /// `adapter` nil exports every adapter's ratings and the base model's. The prompt is the
  /// exact text the model saw (chat template applied), so it and the completion concatenate to
  /// what was generated. DPO pairs every up-rated completion of a prompt with every down-rated
  /// one, prompts in order of their first rating. Returns the number of lines.
  @discardableResult
  public func export(
    format: ExportFormat, adapter: String? = nil, line: (String) throws -> Void
  ) throws -> Int {
    let filter: String?? = adapter.map { .some($0) } ?? .none
    var count = 0
    switch format {
    case .kto:
      try forEachExample(adapter: filter) { e in
        try line(Self.ktoLine(prompt: e.prompt, completion: e.completion, label: e.label))
        count += 1
      }
    case .dpo:
      var order: [String] = []
      var byPrompt: [String: (up: [String], down: [String])] = [:]
      try forEachExample(adapter: filter) { e in
        if byPrompt[e.prompt] == nil {
          order.append(e.prompt)
          byPrompt[e.prompt] = ([], [])
        }
        if e.label {
          byPrompt[e.prompt]!.up.append(e.completion)
        } else {
          byPrompt[e.prompt]!.down.append(e.completion)
        }
      }
      for prompt in order {
        let (ups, downs) = byPrompt[prompt]!
        for chosen in ups {
          for rejected in downs {
            try line(Self.dpoLine(prompt: prompt, chosen: chosen, rejected: rejected))
            count += 1
          }
        }
      }
    }
    return count
  }

  static func ktoLine(prompt: String, completion: String, label: Bool) -> String {
    "{\"prompt\":\(JSONText.quoted(prompt)),\"completion\":\(JSONText.quoted(completion)),\"label\":\(label)}"
  }

  static func dpoLine(prompt: String, chosen: String, rejected: String) -> String {
    "{\"prompt\":\(JSONText.quoted(prompt)),\"chosen\":\(JSONText.quoted(chosen)),"
      + "\"rejected\":\(JSONText.quoted(rejected))}"
  }
}
