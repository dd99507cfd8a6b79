/// A running sequence's hold on one resident adapter version. While any lease on it is
/// outstanding the registry never evicts that copy, and a copy made stale by `rescan` (or
/// replaced on disk) stays alive for its holders until the last lease goes. Release it
/// explicitly when the sequence ends; deinit releases it too. Releasing twice is harmless.
public final class AdapterLease: @unchecked Sendable {  // `released` is guarded by the registry's lock
  /// The weights in serving form; pass `AdapterMix(lease.adapter)` to the forward.
  public let adapter: ResidentAdapter
  /// Exactly which adapter and version this is.
  public let ref: AdapterRef
  public var name: String { ref.name }
  public var version: Int { ref.version }

  let entry: ResidentEntry
  let registry: AdapterRegistry
  var released = false  // under registry.lock

  init(entry: ResidentEntry, registry: AdapterRegistry) {
    self.entry = entry
    self.registry = registry
    adapter = entry.adapter
    ref = entry.ref
  }

  /// Gives the adapter back to the registry, which may evict it from now on.
  public func release() { registry.release(self) }

  deinit { registry.release(self) }
}

/// One resident copy in the registry. All `var`s are guarded by the registry's lock.
final class ResidentEntry: @unchecked Sendable {  // mutable fields under AdapterRegistry.lock
  let ref: AdapterRef
  let adapter: ResidentAdapter
  /// The stamps of the files it was loaded from (taken before loading).
  let fingerprint: Fingerprint?
  var leases = 0
  /// The registry's clock at the last acquire; the smallest is evicted first.
  var lastUse: UInt64 = 0
  /// Dropped from the table (stale, deleted, unloaded) but still leased: alive until released.
  var retired = false

  init(ref: AdapterRef, adapter: ResidentAdapter, fingerprint: Fingerprint?) {
    self.ref = ref
    self.adapter = adapter
    self.fingerprint = fingerprint
  }
}
