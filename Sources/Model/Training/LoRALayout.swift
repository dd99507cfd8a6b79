/// Where each trainable LoRA factor lives in one flat array of floats: for every adapted
/// (layer, module), A (rank, cols) then B (rows, rank), both row-major, in (layer, module)
/// order. Parameters, gradients and the optimizer's moments all share one layout, so the
/// optimizer and the gradient clipping see a single vector.
public struct LoRALayout: Sendable, Equatable {
  /// One adapted module: ΔW = scale · B·A of a base weight (rows × cols).
  public struct Slot: Sendable, Equatable {
    public let layer: Int
    public let module: LoRAModule
    public let rank: Int
    public let rows: Int
    public let cols: Int
    /// alpha / r (rsLoRA: alpha / √r): fixed with the adapter, not trained.
    public let scale: Float
    /// Offset of A (rank × cols floats) in the flat array.
    public let a: Int
    /// Offset of B (rows × rank floats) in the flat array.
    public let b: Int
  }

  public let layers: Int
  public let slots: [Slot]
  /// Floats in the flat array.
  public let count: Int
  private let table: [Int]  // (layer, module) → index in `slots`, or -1

  /// One entry per adapted module: its layer, module, rank and scale; shapes come from the config.
  public init(config c: LlamaConfig, modules: [(layer: Int, module: LoRAModule, rank: Int, scale: Float)]) throws {
    let sorted = modules.sorted { ($0.layer, $0.module.index) < ($1.layer, $1.module.index) }
    var table = [Int](repeating: -1, count: c.layers * LoRAModule.allCases.count)
    var slots: [Slot] = []
    var off = 0
    for m in sorted {
      guard m.layer >= 0, m.layer < c.layers, m.rank > 0 else {
        throw TrainingError.badLayout("layer \(m.layer) of \(c.layers), rank \(m.rank) for \(m.module.rawValue)")
      }
      let i = m.layer * LoRAModule.allCases.count + m.module.index
      guard table[i] < 0 else {
        throw TrainingError.badLayout("\(m.module.rawValue) of layer \(m.layer) is listed twice")
      }
      let (rows, cols) = m.module.shape(c)
      table[i] = slots.count
      slots.append(
        Slot(
          layer: m.layer, module: m.module, rank: m.rank, rows: rows, cols: cols, scale: m.scale, a: off,
          b: off + m.rank * cols))
      off += m.rank * (rows + cols)
    }
    layers = c.layers
    self.slots = slots
    self.table = table
    count = off
  }

  /// Every layer, the given modules, one rank, scale alpha / rank.
  public init(config c: LlamaConfig, rank: Int, alpha: Float, modules: [LoRAModule] = LoRAModule.allCases) throws {
    try self.init(
      config: c,
      modules: (0..<c.layers).flatMap { l in modules.map { (l, $0, rank, alpha / Float(rank)) } })
  }

  /// The slot of (layer, module), or nil where the adapter leaves the base alone.
  public func slot(layer: Int, module: LoRAModule) -> Slot? {
    let i = table[layer * LoRAModule.allCases.count + module.index]
    return i < 0 ? nil : slots[i]
  }

  /// The largest rank of any slot (0 when empty).
  public var maxRank: Int { slots.map(\.rank).max() ?? 0 }
}

/// The trainable factors of one adapter, in float, laid out by `layout`.
public struct LoRAParameters: Sendable {
  public let layout: LoRALayout
  /// (layout.count) every A and B.
  public var values: [Float]

  public init(layout: LoRALayout, values: [Float]) {
    precondition(values.count == layout.count, "\(values.count) values for a layout of \(layout.count)")
    self.layout = layout
    self.values = values
  }

  /// A fresh adapter as PEFT initialises one: A uniform in ±1/√cols (Kaiming-uniform with a = √5),
  /// B = 0, so the adapter starts as the base model. `bScale` > 0 draws B uniform in ±bScale instead
  /// (tests, where both factors must get a gradient). Deterministic for a seed.
  public init(layout: LoRALayout, seed: UInt64, bScale: Float = 0) {
    var rng = Xoshiro256(seed: seed)
    var v = [Float](repeating: 0, count: layout.count)
    for s in layout.slots {
      let bound = 1 / Float(s.cols).squareRoot()
      for i in 0..<(s.rank * s.cols) { v[s.a + i] = (rng.nextUnit() * 2 - 1) * bound }
      if bScale > 0 {
        for i in 0..<(s.rows * s.rank) { v[s.b + i] = (rng.nextUnit() * 2 - 1) * bScale }
      }
    }
    self.init(layout: layout, values: v)
  }
}

/// dL/dθ for every LoRA parameter θ, laid out like the parameters. Backward passes add into it.
public struct LoRAGradients: Sendable {
  public let layout: LoRALayout
  /// (layout.count) dL/dA and dL/dB of every slot.
  public var values: [Float]

  /// All zero.
  public init(layout: LoRALayout) {
    self.layout = layout
    values = [Float](repeating: 0, count: layout.count)
  }

  /// Sets every gradient to zero (keeps the storage).
  public mutating func zero() {
    values.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
  }

  /// The Euclidean norm of the whole gradient vector (accumulated in double).
  public var norm: Double {
    var s: Double = 0
    for g in values { s += Double(g) * Double(g) }
    return s.squareRoot()
  }

  /// Global-norm clipping: scales every gradient by maxNorm / ‖g‖ when ‖g‖ > maxNorm.
  /// Returns the norm before clipping.
  @discardableResult
  public mutating func clip(maxNorm: Double) -> Double {
    let n = norm
    if n > maxNorm && n > 0 {
      let f = Float(maxNorm / n)
      values.withUnsafeMutableBufferPointer { v in for i in v.indices { v[i] *= f } }
    }
    return n
  }
}
