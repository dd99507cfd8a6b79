import Foundation

/// What `rescan()` found changed since the last look at the directory.
public struct RescanReport: Sendable, Equatable {
  /// Adapters that appeared.
  public var added: [String] = []
  /// Adapters that are gone.
  public var removed: [String] = []
  /// Adapters whose versions, files, `current` pointer or `lorad.json` changed.
  public var changed: [String] = []
  /// Resident copies dropped as stale (`name@N` or a path); leased ones live on until released.
  public var dropped: [String] = []
  public init() {}
  public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty && dropped.isEmpty }
}

extension AdapterRegistry {
  /// Looks at the adapters directory again: notices new and deleted adapters, replaced files
  /// (inode, size, modification time) and moved `current` pointers, and drops resident copies
  /// whose files changed or vanished. Sequences holding a dropped copy keep it until they release
  /// it. Adapters given by path are checked against their files too. Cheap (a few `stat`s per
  /// version): a daemon may call it every second, or on SIGHUP.
  @discardableResult
  public func rescan() -> RescanReport {
    lock.lock()
    defer { lock.unlock() }
    let fresh = AdapterCatalog.scan(directory)
    var report = RescanReport()
    report.added = fresh.keys.filter { catalog[$0] == nil }.sorted()
    report.removed = catalog.keys.filter { fresh[$0] == nil }.sorted()
    report.changed = fresh.keys.filter { catalog[$0] != nil && catalog[$0] != fresh[$0] }.sorted()
    catalog = fresh
    for e in table.values.sorted(by: { $0.ref.description < $1.ref.description }) {
      let now: Fingerprint?
      switch e.ref.kind {
      case .registered: now = fresh[e.ref.name]?.versions[e.ref.version]
      case .path: now = Fingerprint.path(e.ref.path)
      }
      if now == nil || now != e.fingerprint {
        report.dropped.append(e.ref.description)
        retireLocked(e)
      }
    }
    summaries = summaries.filter { path, s in Fingerprint.path(path) == s.0 }
    return report
  }
}
