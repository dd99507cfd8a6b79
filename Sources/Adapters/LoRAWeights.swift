import Model
import Tensor

/// The seven projections (defined in Model, next to the forward that applies them).
public typealias LoRAModule = Model.LoRAModule

/// Where a LoRA pair applies: one module of one layer.
public struct LoRATarget: Hashable, Sendable, Comparable {
  public var layer: Int
  public var module: LoRAModule
  public init(layer: Int, module: LoRAModule) {
    self.layer = layer
    self.module = module
  }
  public static func < (a: LoRATarget, b: LoRATarget) -> Bool {
    (a.layer, LoRAModule.allCases.firstIndex(of: a.module)!) < (b.layer, LoRAModule.allCases.firstIndex(of: b.module)!)
  }
}

/// One low-rank update ΔW = scale · B·A of a base weight (rows × cols), in F32:
/// A is (rank, cols) row-major, B is (rows, rank) row-major. `scale` is the adapter's own
/// alpha / r (rsLoRA: alpha / √r); a request's user scale multiplies it.
public struct LoRAPair: Sendable {
  public var rank: Int
  public var rows: Int
  public var cols: Int
  public var scale: Float
  public var a: [Float]  // (rank, cols)
  public var b: [Float]  // (rows, rank)

  public init(rank: Int, rows: Int, cols: Int, scale: Float, a: [Float], b: [Float]) {
    precondition(a.count == rank * cols && b.count == rows * rank)
    self.rank = rank
    self.rows = rows
    self.cols = cols
    self.scale = scale
    self.a = a
    self.b = b
  }

  public var bytes: Int { (a.count + b.count) * MemoryLayout<Float>.size }
}

/// A whole adapter in memory: its pairs by target. Immutable once built, so a sequence that
/// started on it keeps exactly these weights whatever becomes current later.
public final class LoRAWeights: Sendable {
  public let name: String
  public let pairs: [LoRATarget: LoRAPair]
  /// The modules it adapts and its largest rank (for listings).
  public var modules: [LoRAModule] { LoRAModule.allCases.filter { m in pairs.keys.contains { $0.module == m } } }
  public var maxRank: Int { pairs.values.map(\.rank).max() ?? 0 }
  public var bytes: Int { pairs.values.reduce(0) { $0 + $1.bytes } }

  public init(name: String, pairs: [LoRATarget: LoRAPair]) {
    self.name = name
    self.pairs = pairs
  }
}
