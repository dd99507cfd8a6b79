import CKernels
import Tensor

/// How a KV cache stores its keys and values.
public enum KVType: String, Sendable, CaseIterable {
  /// IEEE half: half the memory and half the attention's reads (llama.cpp's default too).
  case f16
  /// Float: exact, as the forward computed them.
  case f32

  var bytes: Int { self == .f16 ? 2 : 4 }
}

/// The keys and values of one sequence, for every layer: `(layer, capacity, kvDim)` each, in F16
/// or F32 (`type`). Owned by the compute thread. `count` positions are filled.
public final class KVCache: @unchecked Sendable {  // touched only by the compute thread
  public let layers: Int
  public let capacity: Int
  public let kvDim: Int
  public let type: KVType
  let keys: UnsafeMutableRawPointer  // (layer, capacity, kvDim)
  let values: UnsafeMutableRawPointer  // (layer, capacity, kvDim)
  /// Positions filled so far; the next token goes at `count`.
  public var count = 0

  /// Made by `LlamaContext.makeCache`, whose scratch for F16 heads exists only when its caches
  /// are F16.
  init(layers: Int, capacity: Int, kvDim: Int, type: KVType = .f32) {
    self.layers = layers
    self.capacity = capacity
    self.kvDim = kvDim
    self.type = type
    let n = max(1, layers * capacity * kvDim) * type.bytes
    keys = .allocate(byteCount: n, alignment: 64)
    values = .allocate(byteCount: n, alignment: 64)
  }

  deinit {
    keys.deallocate()
    values.deallocate()
  }

  /// Where the key (value) of `pos` in `layer` starts: kvDim elements of `type`.
  @inline(__always) func key(_ layer: Int, _ pos: Int) -> UnsafeMutableRawPointer {
    keys + (layer * capacity + pos) * kvDim * type.bytes
  }
  @inline(__always) func value(_ layer: Int, _ pos: Int) -> UnsafeMutableRawPointer {
    values + (layer * capacity + pos) * kvDim * type.bytes
  }

  /// Stores kvDim floats of `k` and `v` at `pos` of `layer` (rounded to nearest even for F16).
  @inline(__always) func store(_ layer: Int, _ pos: Int, key k: UnsafePointer<Float>, value v: UnsafePointer<Float>) {
    switch type {
    case .f32:
      key(layer, pos).assumingMemoryBound(to: Float.self).update(from: k, count: kvDim)
      value(layer, pos).assumingMemoryBound(to: Float.self).update(from: v, count: kvDim)
    case .f16:
      lk_quantize_row(GGMLType.f16.code, k, key(layer, pos), Int64(kvDim))
      lk_quantize_row(GGMLType.f16.code, v, value(layer, pos), Int64(kvDim))
    }
  }

  /// Forgets positions from `n` on.
  public func truncate(to n: Int) { count = min(count, max(0, n)) }

  public var bytes: Int { 2 * layers * capacity * kvDim * type.bytes }
}
