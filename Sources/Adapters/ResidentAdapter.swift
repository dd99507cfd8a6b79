import Model
import Tensor

/// An adapter in serving form: every A and B converted once to F16 (half the bytes a decode
/// step reads) in one allocation, with a (layer, module) table of factors for the forward.
/// Only the serving copy is kept (no F32 master), so `bytes` is what it really costs.
/// Immutable after init, so sequences that started on it keep it even when a newer version
/// becomes current; freed when the last sequence and the registry let go of it.
public final class ResidentAdapter: LowRankSource, @unchecked Sendable {  // immutable after init
  public let name: String
  public let type: GGMLType
  /// Bytes of the serving copy.
  public let bytes: Int
  /// Largest rank and the modules it adapts.
  public let maxRank: Int
  public let modules: [LoRAModule]
  private let targets: [LoRATarget]
  private let storage: UnsafeMutableRawPointer
  private let table: [LowRankFactor?]  // (layer, module)

  /// - type: `.f16` (default, serving) or `.f32` (exact, for checks).
  public init(_ w: LoRAWeights, layers: Int, type: GGMLType = .f16) {
    precondition(type == .f16 || type == .f32)
    name = w.name
    maxRank = w.maxRank
    modules = w.modules
    self.type = type
    let elt = type == .f16 ? 2 : 4
    let targets = w.pairs.keys.sorted().filter { $0.layer < layers }
    self.targets = targets
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
          RowConversion.fromFloat(.f16, src.baseAddress!, dst, v.count)
        } else {
          dst.copyMemory(from: src.baseAddress!, byteCount: v.count * 4)
        }
      }
      off += v.count * elt
      return UnsafeRawPointer(dst)
    }
    for t in targets where t.layer < layers {
      let p = w.pairs[t]!
      // Bᵀ: (rank, rows), so the expand half streams contiguous rows.
      var bt = [Float](repeating: 0, count: p.b.count)
      for r in 0..<p.rows { for k in 0..<p.rank { bt[k * p.rows + r] = p.b[r * p.rank + k] } }
      let a = put(p.a), b = put(bt)
      tab[t.layer * LoRAModule.allCases.count + t.module.index] = LowRankFactor(
        rank: p.rank, rows: p.rows, cols: p.cols, scale: p.scale, type: type, a: a, bt: b)
    }
    table = tab
  }

  deinit { storage.deallocate() }

  /// The weights as the forward uses them, back in F32 (F16-rounded when served in F16).
  public var weights: LoRAWeights {
    var pairs: [LoRATarget: LoRAPair] = [:]
    for t in targets {
      let f = factor(layer: t.layer, module: t.module)!
      func read(_ p: UnsafeRawPointer, _ n: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: n) { buf, count in
          RowConversion.toFloat(type, p, buf.baseAddress!, n)
          count = n
        }
      }
      let bt = read(f.bt, f.rows * f.rank)
      var b = [Float](repeating: 0, count: bt.count)
      for r in 0..<f.rows { for k in 0..<f.rank { b[r * f.rank + k] = bt[k * f.rows + r] } }
      pairs[t] = LoRAPair(rank: f.rank, rows: f.rows, cols: f.cols, scale: f.scale, a: read(f.a, f.rank * f.cols), b: b)
    }
    return LoRAWeights(name: name, pairs: pairs)
  }

  public func factor(layer: Int, module: LoRAModule) -> LowRankFactor? {
    let i = layer * LoRAModule.allCases.count + module.index
    return i < table.count ? table[i] : nil
  }
}
