/// The keys and values of one sequence, for every layer: F32, `(layer, capacity, kvDim)` each.
/// Owned by the compute thread. `count` positions are filled.
public final class KVCache: @unchecked Sendable {  // touched only by the compute thread
  public let layers: Int
  public let capacity: Int
  public let kvDim: Int
  public let keys: UnsafeMutablePointer<Float>  // (layer, capacity, kvDim)
  public let values: UnsafeMutablePointer<Float>  // (layer, capacity, kvDim)
  /// Positions filled so far; the next token goes at `count`.
  public var count = 0

  public init(layers: Int, capacity: Int, kvDim: Int) {
    self.layers = layers
    self.capacity = capacity
    self.kvDim = kvDim
    keys = .allocate(capacity: layers * capacity * kvDim)
    values = .allocate(capacity: layers * capacity * kvDim)
  }

  deinit {
    keys.deallocate()
    values.deallocate()
  }

  @inline(__always) func key(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
    keys + (layer * capacity + pos) * kvDim
  }
  @inline(__always) func value(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
    values + (layer * capacity + pos) * kvDim
  }

  /// Forgets positions from `n` on.
  public func truncate(to n: Int) { count = min(count, max(0, n)) }

  public var bytes: Int { 2 * layers * capacity * kvDim * MemoryLayout<Float>.size }
}
