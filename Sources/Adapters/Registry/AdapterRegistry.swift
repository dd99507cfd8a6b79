import Foundation
import Model
import Tensor

/// The adapters of one base model: found in a directory, versioned, loaded lazily into
/// serving form (`ResidentAdapter`, F16) and kept resident under a memory budget.
///
/// Layout (see `AdapterCatalog`): `DIR/<name>/` is version 0 (PEFT or `adapter.gguf`),
/// `DIR/<name>/versions/<N>/` the learned versions, `DIR/<name>/current` the current number.
/// `acquire("name")` gives the current version, `acquire("name@N")` that one, and a path (a
/// PEFT directory or GGUF LoRA anywhere) is loaded as itself.
///
/// Residency: every `acquire` hands out an `AdapterLease`; a leased copy is never evicted.
/// When a load would pass the budget, the least recently used unleased copies go first; if
/// the leased ones alone leave no room, `acquire` throws `budgetExhausted` (the caller waits for
/// a sequence to end). Resident bytes — including stale copies still leased — never exceed the
/// budget. A lease keeps its exact weights whatever becomes current later.
///
/// Changes on disk are noticed by `rescan()` (new and deleted adapters, replaced files, a
/// moved `current` pointer); stale resident copies are dropped, those still leased when their
/// last lease goes. A name not seen before is also looked up on disk when first asked for.
///
/// Thread safety: one lock (`lock`) guards all mutable state — the catalog, the resident
/// table, the retired copies, the clock and the counters — and every lease's `released` flag.
/// Reading and converting weights and writing new versions happen outside it, so a load never
/// stalls another thread's acquire of a resident adapter; directory scans, renames and the
/// small `current` writes happen under it, so the catalog never goes backwards.
public final class AdapterRegistry: @unchecked Sendable {  // all mutable state under `lock`
  /// The adapters directory, absolute and standardized.
  public let directory: String
  /// The base model the adapters must fit.
  public let config: LlamaConfig
  /// Resident bytes allowed (serving copies, leased or not).
  public let memoryBudget: Int
  /// Element type of resident copies: `.q8_0` (default) or `.f16` to serve, `.f32` for exact checks.
  public let residentType: GGMLType

  let lock = NSLock()
  var catalog: [String: CatalogEntry] = [:]
  /// Resident copies by load path (AdapterRef.path).
  var table: [String: ResidentEntry] = [:]
  /// Copies dropped from `table` while leased.
  var retired: [ObjectIdentifier: ResidentEntry] = [:]
  var residentBytesTotal = 0
  var clock: UInt64 = 0
  var counters = Stats()
  /// Rank and modules of versions read for `list()`, by load path, valid for a fingerprint.
  var summaries: [String: (Fingerprint, VersionSummary)] = [:]

  /// What the registry has done, for stats and tests.
  public struct Stats: Sendable, Equatable {
    /// Adapters read from disk and converted.
    public var loads = 0
    /// Acquires served by a resident copy.
    public var hits = 0
    /// Copies evicted to make room.
    public var evictions = 0
    public var residentBytes = 0
    public var residentCount = 0
    /// Outstanding leases.
    public var leases = 0
    public init() {}
  }

  /// - directory: the adapters directory (need not exist yet; `create` makes it).
  /// - memoryBudget: bytes of resident serving copies allowed, at least 1.
  public init(directory: String, config: LlamaConfig, memoryBudget: Int, residentType: GGMLType = .q8_0) throws {
    guard memoryBudget > 0 else { throw RegistryError.badArgument("the adapter memory budget must be positive") }
    self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
    self.config = config
    self.memoryBudget = memoryBudget
    self.residentType = residentType
    catalog = AdapterCatalog.scan(self.directory)
  }

  // MARK: resolving

  /// Which adapter and version `spec` means — `name` (its current version), `name@N`, or a
  /// path — without loading it.
  public func resolve(_ spec: String) throws -> AdapterRef {
    switch try AdapterSpec.parse(spec) {
    case .path(let p):
      let abs = URL(fileURLWithPath: p).standardizedFileURL
      guard FileManager.default.fileExists(atPath: abs.path) else { throw AdapterError.missingFile(path: p) }
      let last = abs.lastPathComponent
      let name =
        last == GGUFLoRA.fileName
        ? abs.deletingLastPathComponent().lastPathComponent : last.hasSuffix(".gguf") ? String(last.dropLast(5)) : last
      return AdapterRef(kind: .path, name: name, version: 0, path: abs.path)
    case .name(let name, let version):
      lock.lock()
      defer { lock.unlock() }
      return try resolveLocked(name, version)
    }
  }

  /// Resolves a name against the catalog, rescanning that one name on any miss. Under `lock`.
  func resolveLocked(_ name: String, _ version: Int?) throws -> AdapterRef {
    var entry = catalog[name]
    if entry == nil || (version != nil && entry!.versions[version!] == nil) {
      entry = AdapterCatalog.scan(directory, name)
      catalog[name] = entry
    }
    guard let e = entry else {
      throw RegistryError.unknownAdapter(name: name, directory: directory, known: catalog.keys.sorted())
    }
    let v = try version ?? e.current(name: name, directory: directory)
    guard e.versions[v] != nil else {
      throw RegistryError.unknownVersion(name: name, version: v, available: e.versionNumbers)
    }
    return AdapterRef(
      kind: .registered, name: name, version: v, path: AdapterCatalog.versionPath(directory, name, v))
  }

  // MARK: leasing

  /// The adapter `spec` names, resident and leased: loaded from disk on first use (evicting
  /// the least recently used unleased copies if the budget needs it).
  public func acquire(_ spec: String) throws -> AdapterLease {
    try acquire(try resolve(spec))
  }

  /// A lease on `ref`, loading it if it is not resident.
  public func acquire(_ ref: AdapterRef) throws -> AdapterLease {
    if let lease = leaseIfResident(ref) { return lease }
    // Read and convert outside the lock; stamps first, so a change during the load is stale later.
    let fingerprint = Fingerprint.path(ref.path)
    let weights = try LoRALoader.load(path: ref.path, config: config, name: ref.name)
    let adapter = ResidentAdapter(weights, layers: config.layers, type: residentType)
    if adapter.bytes > memoryBudget {
      throw RegistryError.budgetTooSmall(adapter: ref.description, bytes: adapter.bytes, budget: memoryBudget)
    }
    lock.lock()
    defer { lock.unlock() }
    counters.loads += 1
    if let e = table[ref.path] { return leaseLocked(e) }  // another thread loaded it meanwhile
    try makeRoomLocked(adapter.bytes, for: ref)
    let e = ResidentEntry(ref: ref, adapter: adapter, fingerprint: fingerprint)
    table[ref.path] = e
    residentBytesTotal += adapter.bytes
    return leaseLocked(e)
  }

  /// A lease on a resident copy, or nil. Counts a hit.
  func leaseIfResident(_ ref: AdapterRef) -> AdapterLease? {
    lock.lock()
    defer { lock.unlock() }
    guard let e = table[ref.path] else { return nil }
    counters.hits += 1
    return leaseLocked(e)
  }

  /// Under `lock`.
  func leaseLocked(_ e: ResidentEntry) -> AdapterLease {
    clock += 1
    e.lastUse = clock
    e.leases += 1
    counters.leases += 1
    return AdapterLease(entry: e, registry: self)
  }

  /// Evicts unleased copies, least recently used first, until `bytes` more fit. Under `lock`.
  func makeRoomLocked(_ bytes: Int, for ref: AdapterRef) throws {
    while residentBytesTotal + bytes > memoryBudget {
      guard let victim = table.values.filter({ $0.leases == 0 }).min(by: { $0.lastUse < $1.lastUse }) else {
        throw RegistryError.budgetExhausted(
          adapter: ref.description, bytes: bytes, leasedBytes: residentBytesTotal, budget: memoryBudget)
      }
      table[victim.ref.path] = nil
      residentBytesTotal -= victim.adapter.bytes
      counters.evictions += 1
    }
  }

  /// Drops a copy from the table: freed now if unleased, else when its last lease goes. Under `lock`.
  func retireLocked(_ e: ResidentEntry) {
    table[e.ref.path] = nil
    if e.leases == 0 {
      residentBytesTotal -= e.adapter.bytes
    } else {
      e.retired = true
      retired[ObjectIdentifier(e)] = e
    }
  }

  func release(_ lease: AdapterLease) {
    lock.lock()
    defer { lock.unlock() }
    guard !lease.released else { return }
    lease.released = true
    let e = lease.entry
    e.leases -= 1
    counters.leases -= 1
    if e.retired && e.leases == 0 {
      retired[ObjectIdentifier(e)] = nil
      residentBytesTotal -= e.adapter.bytes
    }
  }

  /// Drops the resident copies of every version of `name` (leased ones when released); the
  /// next acquire reads the files again. Returns how many copies were dropped.
  @discardableResult
  public func unload(name: String) -> Int {
    lock.lock()
    defer { lock.unlock() }
    let victims = table.values.filter { $0.ref.kind == .registered && $0.ref.name == name }
    victims.forEach(retireLocked)
    return victims.count
  }

  // MARK: observing

  public var stats: Stats {
    lock.lock()
    defer { lock.unlock() }
    var s = counters
    s.residentBytes = residentBytesTotal
    s.residentCount = table.count + retired.count
    return s
  }

  /// Resident bytes, stale copies still leased included; never above `memoryBudget`.
  public var residentBytes: Int { stats.residentBytes }

  /// The resident copies in the table, least recently used first (stale leased copies aside).
  public func residentRefs() -> [AdapterRef] {
    lock.lock()
    defer { lock.unlock() }
    return table.values.sorted { $0.lastUse < $1.lastUse }.map(\.ref)
  }

  /// Whether `ref` has a resident copy that a new acquire would use.
  public func isResident(_ ref: AdapterRef) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    return table[ref.path] != nil
  }
}
