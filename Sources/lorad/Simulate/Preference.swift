import Learning

/// A simulated user's hidden taste: a test on one answer. The user of `lorad simulate` likes an
/// answer when it passes the test and is not degenerate (see `SimulatedUser`).
enum Preference: String, CaseIterable, Sendable {
  /// The answer ends on its own (finish "stop") within the token budget.
  case short
  /// At most two commas.
  case fewCommas = "few-commas"
  /// At most one comma: the stricter variant, whose baseline on these prompts (~19%) lies in the
  /// issue's 5–40% band where "at most two" (~45%) does not.
  case oneComma = "one-comma"
  /// Mentions a number (a digit).
  case number
  /// Is or contains a list: a line starting with "- ", "* " or "N. ".
  case list

  /// One line on what the user likes, for `--help` and the report.
  var summary: String {
    switch self {
    case .short: return "answers that end on their own within the token budget"
    case .fewCommas: return "answers with at most two commas"
    case .oneComma: return "answers with at most one comma"
    case .number: return "answers that mention a number (a digit)"
    case .list: return "answers that are or contain a list (a line starting with '- ', '* ' or 'N. ')"
    }
  }

  /// Whether the answer `text`, which finished with `finish` ("stop", "length", …), has the
  /// property this user likes. Degeneracy is judged separately.
  func likes(_ text: String, finish: String) -> Bool {
    switch self {
    case .short: return finish == "stop"
    case .fewCommas: return text.reduce(0) { $0 + ($1 == "," ? 1 : 0) } <= 2
    case .oneComma: return text.reduce(0) { $0 + ($1 == "," ? 1 : 0) } <= 1
    case .number: return text.contains(where: { $0.isASCII && $0.isNumber })
    case .list: return text.split(separator: "\n").contains(where: Self.isListItem)
    }
  }

  static func isListItem(_ line: Substring) -> Bool {
    let l = line.drop(while: { $0 == " " || $0 == "\t" })
    if l.hasPrefix("- ") || l.hasPrefix("* ") || l.hasPrefix("• ") { return true }
    let digits = l.prefix(while: { $0.isASCII && $0.isNumber })
    guard !digits.isEmpty, digits.count <= 3 else { return false }
    let rest = l.dropFirst(digits.count)
    return rest.hasPrefix(". ") || rest.hasPrefix(") ")
  }
}

/// The simulated user: thumbs up an answer it likes, down one it does not — and down any
/// degenerate answer whatever its taste, as a real reader would.
struct SimulatedUser: Sendable {
  var preference: Preference
  var limits = Degeneracy.Limits()

  /// The user's verdict on one answer.
  struct Verdict: Sendable, Equatable {
    var up: Bool
    var degenerate: Bool
    var liked: Bool
  }

  func rate(_ text: String, finish: String) -> Verdict {
    let degenerate = Degeneracy(text, limits: limits).isDegenerate
    let liked = preference.likes(text, finish: finish)
    return Verdict(up: liked && !degenerate, degenerate: degenerate, liked: liked)
  }
}
