import Adapters
import Foundation

/// `versions/N/lorad-version.json`: how the learner made version N — its parent, the anchor
/// (reference policy) it was trained against, when, whether the gate let it through, and the
/// figures of its run. Written inside the version's staging directory, so it appears with it.
public struct VersionRecord: Codable, Sendable, Equatable {
  public static let fileName = "lorad-version.json"

  public var version: Int
  /// The version it was trained from.
  public var parent: Int
  /// The reference policy's version (the one the adapter had when learning began).
  public var anchor: Int
  /// ISO 8601, UTC.
  public var created: String
  /// "promoted" or "rejected".
  public var outcome: String
  public var reason: String
  public var loss: String
  /// Figures of the run and the gate (losses, perplexities, KL, repetition, counts).
  public var metrics: [String: Double]

  public init(
    version: Int, parent: Int, anchor: Int, created: String, outcome: String, reason: String, loss: String,
    metrics: [String: Double]
  ) {
    self.version = version
    self.parent = parent
    self.anchor = anchor
    self.created = created
    self.outcome = outcome
    self.reason = reason
    self.loss = loss
    self.metrics = metrics
  }

  /// The record in a version directory, or nil (version 0, or a version lorad did not learn).
  public static func read(directory: String) -> VersionRecord? {
    guard let d = FileManager.default.contents(atPath: directory + "/" + fileName) else { return nil }
    let dec = JSONDecoder()
    dec.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try? dec.decode(VersionRecord.self, from: d)
  }

  func encoded() -> [UInt8] {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    e.nonConformingFloatEncodingStrategy = .convertToString(
      positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return Array((try? e.encode(self)) ?? Data("{}".utf8)) + [0x0A]
  }
}

/// One line of `history`: a version on disk with what is known of it.
public struct VersionInfo: Sendable, Equatable {
  public var version: Int
  /// From the record, else the files' modification time (ISO 8601).
  public var created: String?
  public var parent: Int?
  /// "promoted", "rejected", or "base" (version 0) / "external" for versions lorad did not learn.
  public var outcome: String
  public var reason: String?
  public var metrics: [String: Double]
  public var isCurrent: Bool
  /// The current version's reference policy.
  public var isAnchor: Bool
}

/// Versions of an adapter: listing them and moving `current`, for the daemon and the CLI alike.
public enum AdapterHistory {
  /// The anchor of `version`: from its record, else the version itself (learning begins there).
  public static func anchor(registry: AdapterRegistry, name: String, version: Int) -> Int {
    VersionRecord.read(directory: registry.versionDirectory(name: name, version: version))?.anchor ?? version
  }

  /// Every version of `name`, oldest first.
  public static func list(registry: AdapterRegistry, name: String) throws -> [VersionInfo] {
    guard let a = registry.list().first(where: { $0.name == name }) else {
      throw LearnerError.unknownAdapter(name)
    }
    let anchor = a.current.map { anchorOf(registry, name, $0) }
    let iso = ISO8601DateFormatter()
    return a.versions.map { v in
      let dir = registry.versionDirectory(name: name, version: v)
      let rec = VersionRecord.read(directory: dir)
      var created = rec?.created
      if created == nil, let m = (try? FileManager.default.attributesOfItem(atPath: dir))?[.modificationDate] as? Date {
        created = iso.string(from: m)
      }
      let rejected = registry.rejection(name: name, version: v)
      return VersionInfo(
        version: v, created: created, parent: rec?.parent,
        outcome: rejected != nil ? "rejected" : rec?.outcome ?? (v == 0 ? "base" : "external"),
        reason: rejected ?? rec?.reason, metrics: rec?.metrics ?? [:], isCurrent: v == a.current,
        isAnchor: v == anchor)
    }
  }

  static func anchorOf(_ r: AdapterRegistry, _ name: String, _ v: Int) -> Int {
    anchor(registry: r, name: name, version: v)
  }

  /// Makes `to` current, or by default the version before the current one: its parent when the
  /// learner made it, else the highest version below it that was not rejected. Returns the new
  /// current version. Rejected versions are refused.
  @discardableResult
  public static func rollback(registry: AdapterRegistry, name: String, to: Int? = nil) throws -> Int {
    _ = registry.rescan()
    guard let a = registry.list().first(where: { $0.name == name }) else {
      throw LearnerError.unknownAdapter(name)
    }
    guard let current = a.current else {
      throw LearnerError.failed("'\(name)' has no readable current version; give the version to roll back to")
    }
    var target = to
    if target == nil {
      let parent = VersionRecord.read(directory: registry.versionDirectory(name: name, version: current))?.parent
      if let p = parent, a.versions.contains(p), registry.rejection(name: name, version: p) == nil {
        target = p
      } else {
        target = a.versions.filter { $0 < current && registry.rejection(name: name, version: $0) == nil }.last
      }
    }
    guard let t = target else {
      throw LearnerError.failed("'\(name)' is at version \(current) and has no earlier version to roll back to")
    }
    try registry.setCurrent(name: name, version: t)
    return t
  }
}
