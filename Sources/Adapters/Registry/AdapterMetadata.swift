import Foundation

/// `lorad.json` beside an adapter lorad created: whether the learner may grow it, and how it
/// was made (so a fresh adapter can be made again from its seed).
public struct AdapterMetadata: Codable, Equatable, Sendable {
  public static let fileName = "lorad.json"

  public var learnable: Bool
  /// ISO 8601, UTC.
  public var created: String?
  public var rank: Int?
  public var alpha: Float?
  /// PEFT module names (q_proj, …).
  public var targets: [String]?
  public var seed: UInt64?

  public init(
    learnable: Bool, created: String? = nil, rank: Int? = nil, alpha: Float? = nil, targets: [String]? = nil,
    seed: UInt64? = nil
  ) {
    self.learnable = learnable
    self.created = created
    self.rank = rank
    self.alpha = alpha
    self.targets = targets
    self.seed = seed
  }

  /// The file's contents, or nil when it is missing or not this JSON (treated as not learnable).
  static func read(_ path: String) -> AdapterMetadata? {
    guard let d = FileManager.default.contents(atPath: path) else { return nil }
    return try? JSONDecoder().decode(AdapterMetadata.self, from: d)
  }

  func encoded() -> [UInt8] {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    return Array((try? e.encode(self)) ?? Data()) + [0x0A]
  }
}
