import CKernels
import Model
import Tensor

/// An adapter in serving form: every A and B converted once to F16 (half the bytes a decode
/// step reads) in one allocation, with a (layer, module) table of factors for the forward.
/// Immutable after init, so sequences that started on it keep it even when a newer version
/// becomes current; freed when the last sequence and the registry let go of it.
public final class ResidentAdapter: LowRankSource, @unchecked Sendable {  // immutable after init
  public let name: String
  public let weights: LoRAWeights
  public let type: GGMLType
  /// Bytes of the serving copy.
  public let bytes: Int
  /// Largest rank and the modules it adapts.
  public var maxRank: Int { weights.maxRank }
  public var modules: [LoRAModule] { weights.modules }
  private let storage: UnsafeMutableRawPointer
  private let table: [LowRankFactor?]  // (layer, module)

  /// - type: `.f16` (default, serving) or `.f32` (exact, for checks).
  public init(_ w: LoRAWeights, layers: Int, type: GGMLType = .f16) {
    precondition(type == .f16 || type == .f32)
    name = w.name
    weights = w
    self.type = type
    let elt = type == .f16 ? 2 : 4
    let targets = w.pairs.keys.sorted()
    var total = 0
    for t in targets {
      let p = w.pairs[t]!
      total += (p.a.count + p.b.count) * elt
    }
    bytes = total
    let storage = UnsafeMutableRawPointer.allocate(byteCount: max(total, 64), alignment: 64)
    self.storage = storage
    var tab = [LowRankFactor?](repeating: nil, count: layers * LoRAModule.allCases.count)
    var off = 0
    func put(_ v: [Float]) -> UnsafeRawPointer {
      let dst = storage + off
      v.withUnsafeBufferPointer { src in
        if type == .f16 {
          lk_quantize_row(GGMLType.f16.code, src.baseAddress!, dst, Int64(v.count))
        } else {
          dst.copyMemory(from: src.baseAddress!, byteCount: v.count * 4)
        }
      }
      off += v.count * elt
      return UnsafeRawPointer(dst)
    }
    for t in targets where t.layer < layers {
      let p = w.pairs[t]!
      let a = put(p.a), b = put(p.b)
      tab[t.layer * LoRAModule.allCases.count + t.module.index] = LowRankFactor(
        rank: p.rank, rows: p.rows, cols: p.cols, scale: p.scale, type: type, a: a, b: b)
    }
    table = tab
  }

  deinit { storage.deallocate() }

  public func factor(layer: Int, module: LoRAModule) -> LowRankFactor? {
    let i = layer * LoRAModule.allCases.count + module.index
    return i < table.count ? table[i] : nil
  }
}
