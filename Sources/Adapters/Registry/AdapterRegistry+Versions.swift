import Foundation
import Model

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension AdapterRegistry {
  /// Writes `weights` as the next version of `name` (`DIR/<name>/versions/<N>/`, PEFT, F32)
  /// and makes it current. Crash-safe: the version is built in a hidden staging directory,
  /// renamed into place, then `current` is replaced atomically (temp, fsync, rename, fsync dir).
  /// Sequences running on older versions keep them. Returns N.
  @discardableResult
  public func publish(name: String, weights: LoRAWeights) throws -> Int {
    try writeVersion(name: name, weights: weights, makeCurrent: true)
  }

  /// Writes `weights` as the next version of `name`, with `files` (name → bytes, e.g. the
  /// optimizer state, a version record, a `rejected` marker) beside the adapter's files, and
  /// makes it current when `makeCurrent`. Crash-safe: every file is written and fsynced in a
  /// hidden staging directory (`versions/.staging-…`, never read as a version), which is renamed
  /// into place and the directory fsynced; a kill at any point leaves either no version N or a
  /// whole one. Returns N (one more than the highest version on disk).
  @discardableResult
  public func writeVersion(
    name: String, weights: LoRAWeights, files: [String: [UInt8]] = [:], makeCurrent: Bool
  ) throws -> Int {
    try AdapterSpec.validate(name: name)
    try requireAdapter(name)
    try check(weights, name: name)
    for f in files.keys where f.contains("/") || f.hasPrefix(".") || Fingerprint.adapterFiles.contains(f) {
      throw RegistryError.badArgument("cannot write '\(f)' into a version directory")
    }
    let versions = AdapterCatalog.adapterPath(directory, name) + "/" + AdapterCatalog.versionsDir
    try createDirectory(versions)
    let staging = versions + "/.staging-\(UUID().uuidString)"
    try PEFTAdapter.write(weights, to: staging, dtype: .f32)
    defer { try? FileManager.default.removeItem(atPath: staging) }
    for (f, bytes) in files.sorted(by: { $0.key < $1.key }) {
      try AtomicFile.write(bytes, to: staging + "/" + f)
    }

    lock.lock()
    defer { lock.unlock() }
    let existing = AdapterCatalog.scan(directory, name)?.versionNumbers ?? []
    let n = (existing.last ?? 0) + 1
    let dest = AdapterCatalog.versionPath(directory, name, n)
    guard rename(staging, dest) == 0 else {
      throw RegistryError.io(
        path: dest, reason: "cannot move the new version into place: \(String(cString: strerror(errno)))")
    }
    try AtomicFile.syncDirectory(versions)
    if makeCurrent {
      try writeCurrentLocked(name: name, version: n)
    } else {
      catalog[name] = AdapterCatalog.scan(directory, name)
    }
    return n
  }

  /// The marker file in a version directory that the gate refused: it holds the reason, and
  /// such a version is never made current.
  public static let rejectedMarker = "rejected"

  /// Why version `version` of `name` was rejected, or nil when it was not.
  public func rejection(name: String, version: Int) -> String? {
    guard version > 0 else { return nil }
    let p = AdapterCatalog.versionPath(directory, name, version) + "/" + Self.rejectedMarker
    guard let d = FileManager.default.contents(atPath: p) else { return nil }
    let s = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return s.isEmpty ? "rejected" : s
  }

  /// The directory of version `version` of `name` (version 0: the adapter's own directory).
  public func versionDirectory(name: String, version: Int) -> String {
    AdapterCatalog.versionPath(directory, name, version)
  }

  /// Makes version `version` of `name` current (a rollback, or a roll forward again). New
  /// acquires of `name` get it; running sequences keep theirs. A version the gate rejected
  /// (`rejectedMarker`) is refused.
  public func setCurrent(name: String, version: Int) throws {
    try AdapterSpec.validate(name: name)
    lock.lock()
    defer { lock.unlock() }
    _ = try resolveLocked(name, version)  // exists, and has that version
    if let why = rejection(name: name, version: version) {
      throw RegistryError.badArgument(
        "version \(version) of '\(name)' was rejected by the learner's gate (\(why)); it cannot become current")
    }
    try writeCurrentLocked(name: name, version: version)
  }

  /// Throws `unknownAdapter` unless `name` is in the directory.
  func requireAdapter(_ name: String) throws {
    lock.lock()
    defer { lock.unlock() }
    if catalog[name] == nil { catalog[name] = AdapterCatalog.scan(directory, name) }
    guard catalog[name] != nil else {
      throw RegistryError.unknownAdapter(name: name, directory: directory, known: catalog.keys.sorted())
    }
  }

  /// Replaces `DIR/<name>/current` atomically and refreshes the catalog entry. Under `lock`.
  func writeCurrentLocked(name: String, version: Int) throws {
    try AtomicFile.write(Array("\(version)\n".utf8), to: AdapterCatalog.currentPath(directory, name))
    catalog[name] = AdapterCatalog.scan(directory, name)
  }

  /// Creates a fresh trainable adapter as version 0 of `name`: every layer's `targets`, A
  /// Kaiming-uniform from `seed` (PEFT's default init: U(±1/√in)), B zero — so until it learns
  /// its output equals the base — and `lorad.json` marking it learnable. Written as PEFT (F32)
  /// in a hidden staging directory and renamed into place, so it appears whole or not at all.
  @discardableResult
  public func create(name: String, rank: Int, alpha: Float, targets: [LoRAModule], seed: UInt64) throws -> AdapterRef {
    try AdapterSpec.validate(name: name)
    let maxRank = targets.map { min($0.shape(config).rows, $0.shape(config).cols) }.min() ?? 0
    guard !targets.isEmpty else { throw RegistryError.badArgument("give at least one target module") }
    guard rank >= 1, rank <= maxRank else {
      throw RegistryError.badArgument(
        "rank \(rank) is out of range: it must be between 1 and \(maxRank) for this model")
    }
    guard alpha.isFinite, alpha > 0 else { throw RegistryError.badArgument("alpha must be a positive number") }
    let root = AdapterCatalog.adapterPath(directory, name)
    if FileManager.default.fileExists(atPath: root) { throw RegistryError.alreadyExists(name: name, path: root) }
    try createDirectory(directory)

    let mods = LoRAModule.allCases.filter(targets.contains)
    let weights = Self.freshWeights(name: name, config: config, rank: rank, alpha: alpha, targets: mods, seed: seed)
    let staging = directory + "/.\(name).staging-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: staging) }
    try PEFTAdapter.write(weights, to: staging, dtype: .f32)
    let stamp = ISO8601DateFormatter().string(from: Date())
    let meta = AdapterMetadata(
      learnable: true, created: stamp, rank: rank, alpha: alpha, targets: mods.map(\.rawValue), seed: seed)
    try AtomicFile.write(meta.encoded(), to: staging + "/" + AdapterMetadata.fileName)

    lock.lock()
    defer { lock.unlock() }
    // rename(2) would replace an empty directory, so look again under the lock.
    if FileManager.default.fileExists(atPath: root) { throw RegistryError.alreadyExists(name: name, path: root) }
    guard rename(staging, root) == 0 else {
      throw RegistryError.io(
        path: root, reason: "cannot move the new adapter into place: \(String(cString: strerror(errno)))")
    }
    try AtomicFile.syncDirectory(directory)
    catalog[name] = AdapterCatalog.scan(directory, name)
    return AdapterRef(kind: .registered, name: name, version: 0, path: root)
  }

  /// A fresh LoRA: A (rank, in) uniform in ±1/√in — `kaiming_uniform_(a=√5)`, PEFT's default —
  /// drawn from `seed` in (layer, module) order; B zero; scale alpha / rank.
  public static func freshWeights(
    name: String, config: LlamaConfig, rank: Int, alpha: Float, targets: [LoRAModule], seed: UInt64
  ) -> LoRAWeights {
    var rng = Xoshiro256(seed: seed)
    var pairs: [LoRATarget: LoRAPair] = [:]
    for layer in 0..<config.layers {
      for m in LoRAModule.allCases where targets.contains(m) {
        let (rows, cols) = m.shape(config)
        let bound = 1 / Float(cols).squareRoot()
        let a = (0..<rank * cols).map { _ in (rng.nextUnit() * 2 - 1) * bound }
        pairs[LoRATarget(layer: layer, module: m)] = LoRAPair(
          rank: rank, rows: rows, cols: cols, scale: alpha / Float(rank), a: a,
          b: [Float](repeating: 0, count: rows * rank))
      }
    }
    return LoRAWeights(name: name, pairs: pairs)
  }

  /// Refuses weights that would not load back onto this base model.
  func check(_ w: LoRAWeights, name: String) throws {
    guard !w.pairs.isEmpty else { throw RegistryError.badWeights(name: name, reason: "the adapter has no pairs") }
    for t in w.pairs.keys.sorted() {
      let p = w.pairs[t]!
      let (rows, cols) = t.module.shape(config)
      let what = "layer \(t.layer) \(t.module.rawValue)"
      guard t.layer >= 0, t.layer < config.layers else {
        throw RegistryError.badWeights(name: name, reason: "\(what): the base model has \(config.layers) layers")
      }
      guard p.rows == rows, p.cols == cols, p.rank >= 1 else {
        throw RegistryError.badWeights(
          name: name, reason: "\(what) is \(p.rows)×\(p.cols) rank \(p.rank); the base weight is \(rows)×\(cols)")
      }
      guard p.scale.isFinite, p.a.allSatisfy(\.isFinite), p.b.allSatisfy(\.isFinite) else {
        throw RegistryError.badWeights(name: name, reason: "\(what) holds a NaN or infinity")
      }
    }
  }

  func createDirectory(_ path: String) throws {
    do {
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
      throw RegistryError.io(path: path, reason: "cannot create the directory: \(error.localizedDescription)")
    }
  }
}
