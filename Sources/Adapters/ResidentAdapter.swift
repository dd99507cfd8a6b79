import CKernels
import Dispatch
import Foundation
import Model
import Tensor

/// An adapter in serving form: every A and Bᵀ converted once to the serving type in one
/// allocation, with a (layer, module) table of factors for the forward. Q8_0 (the default to
/// serve: about half of F16's bytes, which is what a decode step with many adapters reads) falls
/// back to F16 for a factor whose sides are not multiples of 32.
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

  /// The types lorad serves LoRA factors in.
  public static let servingTypes: [GGMLType] = [.q8_0, .f16, .f32]

  /// The element type one factor of (rows, cols) gets when `type` is asked for.
  public static func factorType(_ type: GGMLType, rows: Int, cols: Int, rank: Int) -> GGMLType {
    type == .q8_0 && (rows % 32 != 0 || cols % 32 != 0 || rank > Int(LK_LORA_Q8_MAX_RANK)) ? .f16 : type
  }

  /// - type: `.q8_0` (serving default), `.f16`, or `.f32` (exact, for checks and the learner).
  public init(_ w: LoRAWeights, layers: Int, type: GGMLType = .q8_0) {
    precondition(Self.servingTypes.contains(type), "LoRA factors are served as Q8_0, F16 or F32")
    name = w.name
    maxRank = w.maxRank
    modules = w.modules
    self.type = type
    let targets = w.pairs.keys.sorted().filter { $0.layer < layers }
    self.targets = targets
    func rowBytes(_ t: GGMLType, _ n: Int) -> Int { t.rowBytes(n)! }
    // The layout follows a decode step's reads: per layer and per LoRA call of the forward (q k v;
    // o; gate up; down), first the As its shrinks read, then the Bs of its expands, so that each
    // call reads one forward stream per adapter, which the hardware prefetcher follows. A Q8_0 A
    // is held prepacked (lk_lora_pack_a_q8, the same bytes regrouped) where the CPU has AVX-512.
    // Every start is 64-byte aligned. `LK_PREPACK=0` in the environment keeps A in rows (as for
    // the base's weights).
    let packOff = ProcessInfo.processInfo.environment["LK_PREPACK"] == "0"
    var offsets = [(a: Int, b: Int, packed: Bool, type: GGMLType)](repeating: (0, 0, false, type), count: targets.count)
    var total = 0
    func take(_ n: Int) -> Int {
      defer { total += (n + 63) & ~63 }
      return total
    }
    let calls = Dictionary(grouping: targets.indices) { targets[$0].layer * 4 + targets[$0].module.forwardCall }
    for key in calls.keys.sorted() {
      let members = calls[key]!.sorted()  // in module order
      for i in members {
        let p = w.pairs[targets[i]]!
        let ft = Self.factorType(type, rows: p.rows, cols: p.cols, rank: p.rank)
        offsets[i].type = ft
        let packedBytes = ft == .q8_0 && !packOff ? Int(lk_lora_a_q8_packed_bytes(Int64(p.rank), Int64(p.cols))) : 0
        offsets[i].packed = packedBytes > 0
        offsets[i].a = take(packedBytes > 0 ? packedBytes : p.rank * rowBytes(ft, p.cols))
      }
      for i in members {
        let p = w.pairs[targets[i]]!
        let ft = offsets[i].type
        offsets[i].b = take(
          ft == .q8_0 ? Int(lk_lora_b_q8_bytes(Int64(p.rows), Int64(p.rank))) : p.rank * rowBytes(ft, p.rows))
      }
    }
    bytes = total
    let storage = UnsafeMutableRawPointer.allocate(byteCount: max(total, 64), alignment: 64)
    self.storage = storage
    // The conversions, targets spread over the cores (each writes only its own bytes): a cold
    // load is on the path to a request's first token.
    let pairs = targets.map { w.pairs[$0]! }
    let offs = offsets
    let base = Int(bitPattern: storage)  // each iteration writes only its own byte ranges
    DispatchQueue.concurrentPerform(iterations: targets.count) { i in
      let p = pairs[i], o = offs[i]
      let storage = UnsafeMutableRawPointer(bitPattern: base)!
      // A matrix of `count` rows of n elements, converted row by row (Q8_0 blocks never cross rows).
      func put(_ v: UnsafePointer<Float>, rows count: Int, _ n: Int, at off: Int) {
        let rb = o.type.rowBytes(n)!
        for r in 0..<count { RowConversion.fromFloatForServing(o.type, v + r * n, storage + off + r * rb, n) }
      }
      if o.packed {  // the Q8_0 rows, then packed into place
        let rb = GGMLType.q8_0.rowBytes(p.cols)!
        let rows = UnsafeMutableRawPointer.allocate(byteCount: p.rank * rb, alignment: 64)
        defer { rows.deallocate() }
        p.a.withUnsafeBufferPointer { a in
          for r in 0..<p.rank {
            RowConversion.fromFloatForServing(.q8_0, a.baseAddress! + r * p.cols, rows + r * rb, p.cols)
          }
        }
        lk_lora_pack_a_q8(rows, Int64(p.rank), Int64(p.cols), storage + o.a)
      } else {
        p.a.withUnsafeBufferPointer { put($0.baseAddress!, rows: p.rank, p.cols, at: o.a) }
      }
      // B in Q8: each row's rank values one int8 block, by groups of 16 rows for the expand's
      // integer dots (see lk_lora_expand_q8), packed by the kernel straight from B (on a cold
      // load's path to the first token). Otherwise Bᵀ: (rank, rows), so the expand half streams
      // contiguous rows.
      if o.type == .q8_0 {
        p.b.withUnsafeBufferPointer { lk_lora_pack_b_q8($0.baseAddress!, Int64(p.rows), Int64(p.rank), storage + o.b) }
        return
      }
      let bt = [Float](unsafeUninitializedCapacity: p.b.count) { buf, n in
        p.b.withUnsafeBufferPointer { b in
          for r in 0..<p.rows {
            for k in 0..<p.rank { buf[Self.btIndex(k, r, rows: p.rows)] = b[r * p.rank + k] }
          }
        }
        n = p.b.count
      }
      bt.withUnsafeBufferPointer { put($0.baseAddress!, rows: p.rank, p.rows, at: o.b) }
    }
    var tab = [LowRankFactor?](repeating: nil, count: layers * LoRAModule.allCases.count)
    for (i, t) in targets.enumerated() {
      let p = pairs[i], o = offsets[i]
      tab[t.layer * LoRAModule.allCases.count + t.module.index] = LowRankFactor(
        rank: p.rank, rows: p.rows, cols: p.cols, scale: p.scale, type: o.type, a: UnsafeRawPointer(storage + o.a),
        bt: UnsafeRawPointer(storage + o.b), aPacked: o.packed)
    }
    table = tab
  }

  deinit { storage.deallocate() }

  /// The weights as the forward uses them, back in F32 (rounded as served: F16 or Q8_0).
  public var weights: LoRAWeights {
    var pairs: [LoRATarget: LoRAPair] = [:]
    for t in targets {
      let f = factor(layer: t.layer, module: t.module)!
      func read(_ p: UnsafeRawPointer, _ n: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: n) { buf, count in
          RowConversion.toFloat(f.type, p, buf.baseAddress!, n)
          count = n
        }
      }
      var b = [Float](repeating: 0, count: f.rows * f.rank)
      if f.type == .q8_0 {
        lk_lora_unpack_b_q8(f.bt, Int64(f.rows), Int64(f.rank), &b)
      } else {
        let bt = read(f.bt, f.rows * f.rank)
        for r in 0..<f.rows {
          for k in 0..<f.rank { b[r * f.rank + k] = bt[Self.btIndex(k, r, rows: f.rows)] }
        }
      }
      var a: [Float]
      if f.aPacked {
        let rows = UnsafeMutableRawPointer.allocate(byteCount: f.rank * f.type.rowBytes(f.cols)!, alignment: 64)
        defer { rows.deallocate() }
        lk_lora_unpack_a_q8(f.a, Int64(f.rank), Int64(f.cols), rows)
        a = read(UnsafeRawPointer(rows), f.rank * f.cols)
      } else {
        a = read(f.a, f.rank * f.cols)
      }
      pairs[t] = LoRAPair(rank: f.rank, rows: f.rows, cols: f.cols, scale: f.scale, a: a, b: b)
    }
    return LoRAWeights(name: name, pairs: pairs)
  }

  /// Where Bᵀ[k, r] is stored in F16 / F32: row-major (rank, rows).
  static func btIndex(_ k: Int, _ r: Int, rows: Int) -> Int { k * rows + r }

  public func factor(layer: Int, module: LoRAModule) -> LowRankFactor? {
    let i = layer * LoRAModule.allCases.count + module.index
    return i < table.count ? table[i] : nil
  }
}
