import Model

extension LoRAParameters {
  /// An adapter's factors in training form (`LoRALayout` order: every pair's A then B, scales
  /// kept per pair). Throws when a pair does not fit the model's shapes.
  public init(_ w: LoRAWeights, config c: LlamaConfig) throws {
    let targets = w.pairs.keys.sorted()
    let layout = try LoRALayout(
      config: c, modules: targets.map { t in (t.layer, t.module, w.pairs[t]!.rank, w.pairs[t]!.scale) })
    var values = [Float](repeating: 0, count: layout.count)
    for t in targets {
      let p = w.pairs[t]!, s = layout.slot(layer: t.layer, module: t.module)!
      guard p.rows == s.rows, p.cols == s.cols else {
        throw TrainingError.layoutMismatch(
          "adapter \(w.name): \(t.module.rawValue) of layer \(t.layer) is \(p.rows)×\(p.cols), the model's \(s.rows)×\(s.cols)"
        )
      }
      values.replaceSubrange(s.a..<(s.a + p.a.count), with: p.a)
      values.replaceSubrange(s.b..<(s.b + p.b.count), with: p.b)
    }
    self.init(layout: layout, values: values)
  }
}

extension LoRAWeights {
  /// Trained factors back in the registry's form (to write as a new adapter version).
  public convenience init(name: String, parameters p: LoRAParameters) {
    var pairs: [LoRATarget: LoRAPair] = [:]
    for s in p.layout.slots {
      pairs[LoRATarget(layer: s.layer, module: s.module)] = LoRAPair(
        rank: s.rank, rows: s.rows, cols: s.cols, scale: s.scale,
        a: Array(p.values[s.a..<(s.a + s.rank * s.cols)]), b: Array(p.values[s.b..<(s.b + s.rows * s.rank)]))
    }
    self.init(name: name, pairs: pairs)
  }
}
