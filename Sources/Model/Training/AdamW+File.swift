import Foundation

/// The optimizer state on disk, next to an adapter version (e.g. `versions/N/optimizer.bin`), so
/// the learner resumes with its moments. Little-endian:
///   0  "LRADAMW1"                     magic and format version
///   8  UInt64 count                   floats in m (and in v)
///  16  UInt64 step
///  24  UInt64 layout fingerprint      FNV-1a over every slot's (layer, module, rank, rows, cols)
///  32  Float32 lr, β1, β2, ε, weight decay; Float64 max gradient norm (NaN: none)
///  64  Float32 m[count], then Float32 v[count]
extension AdamW {
  static let magic = Array("LRADAMW1".utf8)
  static let headerBytes = 64

  /// Writes the state to `path` atomically (a temporary file renamed over it).
  public func write(to path: String) throws {
    var d = Data(capacity: Self.headerBytes + 8 * m.count)
    func put<T>(_ x: T) { withUnsafeBytes(of: x) { d.append(contentsOf: $0) } }
    d.append(contentsOf: Self.magic)
    put(UInt64(m.count).littleEndian)
    put(UInt64(step).littleEndian)
    put(layout.fingerprint.littleEndian)
    for f in [settings.learningRate, settings.beta1, settings.beta2, settings.eps, settings.weightDecay] {
      put(f.bitPattern.littleEndian)
    }
    put((settings.maxGradNorm ?? .nan).bitPattern.littleEndian)
    d.append(contentsOf: [UInt8](repeating: 0, count: Self.headerBytes - d.count))
    for a in [m, v] { a.map { $0.bitPattern.littleEndian }.withUnsafeBytes { d.append(contentsOf: $0) } }
    do {
      try d.write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
      throw TrainingError.badOptimizerState(path: path, reason: "cannot write: \(error.localizedDescription)")
    }
  }

  /// Reads a state written by `write(to:)` for parameters laid out by `layout`.
  public init(contentsOf path: String, layout: LoRALayout) throws {
    func bad(_ r: String) -> TrainingError { .badOptimizerState(path: path, reason: r) }
    guard let d = FileManager.default.contents(atPath: path) else { throw bad("cannot read the file") }
    guard d.count >= Self.headerBytes, Array(d.prefix(8)) == Self.magic else {
      throw bad("not an AdamW state file (no LRADAMW1 header)")
    }
    func u64(_ o: Int) -> UInt64 {
      UInt64(littleEndian: d.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt64.self) })
    }
    func u32(_ o: Int) -> UInt32 {
      UInt32(littleEndian: d.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt32.self) })
    }
    let count = Int(u64(8)), step = Int(u64(16))
    guard count == layout.count, u64(24) == layout.fingerprint else {
      throw bad("it belongs to another adapter layout (\(count) values; the adapter has \(layout.count))")
    }
    guard d.count == Self.headerBytes + 8 * count else {
      throw bad("\(d.count) bytes, expected \(Self.headerBytes + 8 * count) (truncated?)")
    }
    let f = (0..<5).map { Float(bitPattern: u32(32 + 4 * $0)) }
    let clip = Double(bitPattern: u64(52))
    self.init(
      layout: layout,
      settings: Settings(
        learningRate: f[0], beta1: f[1], beta2: f[2], eps: f[3], weightDecay: f[4],
        maxGradNorm: clip.isNaN ? nil : clip))
    self.step = step
    d.withUnsafeBytes { raw in
      func read(_ base: Int) -> [Float] {
        (0..<count).map {
          Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * $0, as: UInt32.self)))
        }
      }
      m = read(Self.headerBytes)
      v = read(Self.headerBytes + 4 * count)
    }
  }
}

extension LoRALayout {
  /// FNV-1a over every slot's (layer, module, rank, rows, cols): tells layouts apart on disk.
  public var fingerprint: UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for s in slots {
      for x in [s.layer, s.module.index, s.rank, s.rows, s.cols] {
        for byte in 0..<8 {
          h ^= UInt64(truncatingIfNeeded: x >> (8 * byte)) & 0xff
          h = h &* 0x100_0000_01b3
        }
      }
    }
    return h
  }
}
