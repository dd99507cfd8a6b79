import Model

extension LoRAWeights {
  /// Random weights for benchmarks and tests: A and B uniform in ±1/√cols and ±bScale, every
  /// targeted module of every layer, scale alpha / rank. Deterministic for a seed.
  public static func random(
    name: String, config c: LlamaConfig, rank: Int, alpha: Float, modules: [LoRAModule] = LoRAModule.allCases,
    bScale: Float = 0.01, seed: UInt64
  ) -> LoRAWeights {
    var rng = Xoshiro256(seed: seed)
    func r(_ n: Int, _ s: Float) -> [Float] { (0..<n).map { _ in (rng.nextUnit() * 2 - 1) * s } }
    var pairs: [LoRATarget: LoRAPair] = [:]
    for l in 0..<c.layers {
      for m in modules {
        let (rows, cols) = m.shape(c)
        pairs[LoRATarget(layer: l, module: m)] = LoRAPair(
          rank: rank, rows: rows, cols: cols, scale: alpha / Float(rank),
          a: r(rank * cols, 1 / Float(cols).squareRoot()), b: r(rows * rank, bScale))
      }
    }
    return LoRAWeights(name: name, pairs: pairs)
  }
}
