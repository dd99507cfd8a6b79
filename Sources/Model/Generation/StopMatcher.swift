/// Finds stop strings in streamed text. Text that could still be the start of a stop string
/// is held back, so a client never sees part of a stop string.
public struct StopMatcher: Sendable {
  public let stops: [String]
  private var pending = ""

  public init(_ stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

  /// Feeds new text. Returns the text safe to emit now and whether a stop string was hit
  /// (in which case the returned text ends just before it and the rest is dropped).
  public mutating func push(_ text: String) -> (emit: String, stopped: Bool) {
    if stops.isEmpty { return (text, false) }
    pending += text
    var first: String.Index? = nil
    for s in stops {
      if let r = pending.range(of: s), first == nil || r.lowerBound < first! { first = r.lowerBound }
    }
    if let f = first {
      let out = String(pending[..<f])
      pending = ""
      return (out, true)
    }
    // Hold back the longest suffix that is a prefix of some stop string.
    var hold = 0
    for s in stops {
      var k = min(s.count - 1, pending.count)
      while k > hold {
        if pending.hasSuffix(s.prefix(k)) {
          hold = k
          break
        }
        k -= 1
      }
    }
    let cut = pending.index(pending.endIndex, offsetBy: -hold)
    let out = String(pending[..<cut])
    pending = String(pending[cut...])
    return (out, false)
  }

  /// The held-back text, at the end of generation.
  public mutating func flush() -> String {
    defer { pending = "" }
    return pending
  }
}
