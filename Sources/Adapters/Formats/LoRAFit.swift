import Model

/// The checks every format makes before a pair joins an adapter: its layer exists in the base,
/// A and B agree on the rank, and their other dimensions are the base weight's.
enum LoRAFit {
  /// How a format writes a matrix's shape in its files (for error messages that match what
  /// the user's own tools show): safetensors lists rows first, GGUF lists ggml's ne (columns first).
  enum ShapeOrder { case rowsFirst, columnsFirst }

  /// Throws unless A (rank, cols) and B (rows, rank) fit `module` of `layer` in the base.
  /// `aShape`/`bShape` are as the file gives them, in `order`.
  static func check(
    path: String, target: LoRATarget, aName: String, aShape: [Int], bName: String, bShape: [Int],
    order: ShapeOrder, config: LlamaConfig
  ) throws {
    func matrix(_ s: [Int], _ name: String) throws -> (rows: Int, cols: Int) {
      guard s.count == 2 else {
        throw AdapterError.unexpectedTensor(
          path: path, tensor: name, reason: "has \(s.count) dimensions \(s), a LoRA matrix has 2")
      }
      return order == .rowsFirst ? (s[0], s[1]) : (s[1], s[0])
    }
    func shown(_ rows: Int, _ cols: Int) -> [Int] { order == .rowsFirst ? [rows, cols] : [cols, rows] }
    let a = try matrix(aShape, aName)
    let b = try matrix(bShape, bName)
    guard target.layer < config.layers else {
      throw AdapterError.layerOutOfRange(path: path, tensor: aName, layer: target.layer, layers: config.layers)
    }
    guard a.rows > 0 else {
      throw AdapterError.rankMismatch(
        path: path, tensor: aName, rank: 0, expected: 1, reason: "a LoRA rank is at least 1")
    }
    guard b.cols == a.rows else {
      throw AdapterError.rankMismatch(
        path: path, tensor: bName, rank: b.cols, expected: a.rows, reason: "B's rank must equal the rank of '\(aName)'")
    }
    let base = target.module.shape(config)
    guard a.cols == base.cols else {
      throw AdapterError.shapeMismatch(path: path, tensor: aName, shape: aShape, expected: shown(a.rows, base.cols))
    }
    guard b.rows == base.rows else {
      throw AdapterError.shapeMismatch(path: path, tensor: bName, shape: bShape, expected: shown(base.rows, b.cols))
    }
  }
}
