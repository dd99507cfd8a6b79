import Foundation
import Model

/// One adapter of the directory, as `list()` reports it.
public struct AdapterSummary: Sendable, Equatable {
  public var name: String
  /// Version numbers on disk, ascending (0 is `DIR/<name>/` itself).
  public var versions: [Int]
  /// nil when the `current` pointer is broken (see `problem`).
  public var current: Int?
  /// Largest rank of the current version; nil when it could not be read (see `problem`).
  public var rank: Int?
  /// Modules the current version adapts.
  public var targets: [LoRAModule]
  /// Bytes of the adapter files of all versions.
  public var diskBytes: Int
  /// Bytes of the current version's files.
  public var currentDiskBytes: Int
  /// Whether any version has a resident copy, and their bytes.
  public var resident: Bool
  public var residentBytes: Int
  /// `lorad.json` says the learner may grow it.
  public var learnable: Bool
  /// Why the current version cannot be served, if it cannot.
  public var problem: String?
}

/// Rank and modules of one version, cached by `list()`.
struct VersionSummary: Sendable {
  var rank: Int
  var targets: [LoRAModule]
}

extension AdapterRegistry {
  /// Every adapter in the directory, by name, as of the last scan (call `rescan()` first to
  /// see changes made behind the registry's back). Rank and targets come from the resident copy
  /// of the current version, else from reading its files once (cached while they are unchanged).
  public func list() -> [AdapterSummary] {
    struct Pending {
      var summary: AdapterSummary
      var path: String?
      var fingerprint: Fingerprint?
    }
    // 1. Under the lock: what the catalog and the resident table know.
    lock.lock()
    var pending: [Pending] = []
    for name in catalog.keys.sorted() {
      let e = catalog[name]!
      let resident = table.values.filter { $0.ref.kind == .registered && $0.ref.name == name }
      var s = AdapterSummary(
        name: name, versions: e.versionNumbers, current: nil, rank: nil, targets: [],
        diskBytes: e.versions.values.reduce(0) { $0 + $1.bytes }, currentDiskBytes: 0,
        resident: !resident.isEmpty, residentBytes: resident.reduce(0) { $0 + $1.adapter.bytes },
        learnable: e.metadata?.learnable ?? false, problem: nil)
      var p = Pending(summary: s)
      do {
        let v = try e.current(name: name, directory: directory)
        s.current = v
        s.currentDiskBytes = e.versions[v]!.bytes
        let path = AdapterCatalog.versionPath(directory, name, v)
        if let r = table[path] {
          s.rank = r.adapter.maxRank
          s.targets = r.adapter.modules
        } else if let (f, c) = summaries[path], f == e.versions[v] {
          s.rank = c.rank
          s.targets = c.targets
        } else {
          p.path = path
          p.fingerprint = e.versions[v]
        }
      } catch {
        s.problem = "\(error)"
      }
      p.summary = s
      pending.append(p)
    }
    lock.unlock()

    // 2. Outside it: read the versions not seen yet.
    var learned: [String: (Fingerprint, VersionSummary)] = [:]
    for i in pending.indices {
      guard let path = pending[i].path, let f = pending[i].fingerprint else { continue }
      do {
        let w = try LoRALoader.load(path: path, config: config, name: pending[i].summary.name)
        let c = VersionSummary(rank: w.maxRank, targets: w.modules)
        pending[i].summary.rank = c.rank
        pending[i].summary.targets = c.targets
        learned[path] = (f, c)
      } catch {
        pending[i].summary.problem = "\(error)"
      }
    }
    if !learned.isEmpty {
      lock.lock()
      summaries.merge(learned) { _, new in new }
      lock.unlock()
    }
    return pending.map(\.summary)
  }
}
