import CKernels
import Foundation
import Testing

/// Tests that compare the kernels' ISA levels run one at a time in this suite. Extended in the
/// Kernel*Tests files.
@Suite(.serialized) struct KernelISATests {}

/// A weight type as the tests name it.
struct KType: CustomStringConvertible, Sendable {
  let code: Int32
  let name: String
  var description: String { name }

  static let f32 = KType(code: Int32(LK_F32), name: "F32")
  static let f16 = KType(code: Int32(LK_F16), name: "F16")
  static let bf16 = KType(code: Int32(LK_BF16), name: "BF16")
  static let q4_0 = KType(code: Int32(LK_Q4_0), name: "Q4_0")
  static let q4_1 = KType(code: Int32(LK_Q4_1), name: "Q4_1")
  static let q8_0 = KType(code: Int32(LK_Q8_0), name: "Q8_0")
  static let q8_1 = KType(code: Int32(LK_Q8_1), name: "Q8_1")
  static let q4_K = KType(code: Int32(LK_Q4_K), name: "Q4_K")
  static let q6_K = KType(code: Int32(LK_Q6_K), name: "Q6_K")
  static let q8_K = KType(code: Int32(LK_Q8_K), name: "Q8_K")

  /// Weight types with matvec / matmul kernels.
  static let weights: [KType] = [.q4_0, .q4_1, .q8_0, .q4_K, .q6_K, .f32, .f16, .bf16]
  /// Every type lk_dequantize_row handles.
  static let all: [KType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q8_0, .q8_1, .q4_K, .q6_K, .q8_K]

  var blockElems: Int { Int(lk_block_elems(code)) }
  var blockBytes: Int { Int(lk_block_bytes(code)) }
  func rowBytes(_ n: Int) -> Int { Int(lk_row_bytes(code, Int64(n))) }
  var isFloat: Bool { blockElems == 1 }
}

/// Every ISA level this CPU can run (scalar first).
let kernelISAs: [Int32] = Array(0...lk_cpu_isa())
let isaNames = ["scalar", "avx2", "avx512", "amx"]

/// Runs body once per ISA level with that level pinned for the calling thread (and the pool jobs
/// it starts), then unpins. Only this thread's kernels change level: suites running in parallel
/// (the model and adapter reference tests) keep computing on the best level.
func forEachISA(_ body: (Int32) -> Void) {
  defer { lk_set_thread_isa(-1) }
  for isa in kernelISAs {
    let pinned = lk_set_thread_isa(isa)
    #expect(pinned == isa && lk_isa() == isa)
    body(isa)
  }
}

/// SplitMix64: a small seeded generator, so every test input is reproducible.
struct SeededRNG: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  /// Roughly normal (sum of uniforms), mean 0, standard deviation `sigma`.
  mutating func gaussian(_ sigma: Float = 1) -> Float {
    var s: Float = 0
    for _ in 0..<4 { s += Float.random(in: -1...1, using: &self) }
    return s * sigma * 0.866
  }
  mutating func floats(_ n: Int, sigma: Float = 1) -> [Float] { (0..<n).map { _ in gaussian(sigma) } }
}

/// A random finite f16 bit pattern with magnitude in about [2^(lo-15), 2^(hi-15)).
func randomHalfBits(_ rng: inout SeededRNG, exponents: ClosedRange<UInt16> = 1...16, signed: Bool = true) -> UInt16 {
  let sign: UInt16 = signed && Bool.random(using: &rng) ? 0x8000 : 0
  let e = UInt16.random(in: exponents, using: &rng)
  return sign | (e << 10) | UInt16.random(in: 0..<1024, using: &rng)
}

/// Raw bytes of n elements of `type`: random quant bytes with finite, moderate scale fields;
/// for F16/BF16 random finite values (zeros and subnormals included).
func randomRaw(_ type: KType, _ n: Int, _ rng: inout SeededRNG) -> [UInt8] {
  var raw = (0..<type.rowBytes(n)).map { _ in UInt8.random(in: 0...255, using: &rng) }
  func put16(_ v: UInt16, _ at: Int) {
    raw[at] = UInt8(v & 0xFF)
    raw[at + 1] = UInt8(v >> 8)
  }
  let nb = n / type.blockElems
  switch type.code {
  case KType.f16.code:
    for i in 0..<n where (raw[2 * i + 1] & 0x7C) == 0x7C { raw[2 * i + 1] &= 0x83 }  // inf/NaN -> subnormal
  case KType.bf16.code:
    for i in 0..<n where (UInt16(raw[2 * i + 1]) << 8 | UInt16(raw[2 * i])) & 0x7F80 == 0x7F80 {
      raw[2 * i + 1] &= 0x80
    }
  case KType.f32.code:
    for i in 0..<n {
      let f = rng.gaussian()
      withUnsafeBytes(of: f.bitPattern.littleEndian) { for k in 0..<4 { raw[4 * i + k] = $0[k] } }
    }
  case KType.q8_K.code:
    for b in 0..<nb {
      let d = Float.random(in: -0.05...0.05, using: &rng)
      withUnsafeBytes(of: d.bitPattern.littleEndian) { for k in 0..<4 { raw[b * 292 + k] = $0[k] } }
    }
  default:
    for b in 0..<nb {
      let at = b * type.blockBytes
      switch type.code {
      case KType.q6_K.code: put16(randomHalfBits(&rng, exponents: 5...13), at + 208)
      case KType.q4_K.code:
        put16(randomHalfBits(&rng, exponents: 5...13, signed: false), at)
        put16(randomHalfBits(&rng, exponents: 5...13, signed: false), at + 2)
      case KType.q4_1.code, KType.q8_1.code:
        put16(randomHalfBits(&rng), at)
        put16(randomHalfBits(&rng), at + 2)
      default: put16(randomHalfBits(&rng), at)
      }
    }
  }
  return raw
}

/// A rows × cols weight matrix of `type` quantized from random floats, and its dequantized form.
func randomWeights(_ type: KType, rows: Int, cols: Int, _ rng: inout SeededRNG) -> (raw: [UInt8], dequant: [Float]) {
  let rb = type.rowBytes(cols)
  var raw = [UInt8](repeating: 0, count: rb * rows)
  var deq = [Float](repeating: 0, count: rows * cols)
  for r in 0..<rows {
    let row = rng.floats(cols, sigma: 0.1)
    raw.withUnsafeMutableBytes { lk_quantize_row(type.code, row, $0.baseAddress! + r * rb, Int64(cols)) }
    raw.withUnsafeBytes { src in
      deq.withUnsafeMutableBufferPointer {
        lk_dequantize_row_ref(type.code, src.baseAddress! + r * rb, $0.baseAddress! + r * cols, Int64(cols))
      }
    }
  }
  return (raw, deq)
}

/// The test fixture `name` (in Fixtures/), as bytes.
func fixture(_ name: String) throws -> [UInt8] {
  let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
  return [UInt8](try Data(contentsOf: url))
}

/// Floats from little-endian float32 bytes.
func floats(fromLE bytes: [UInt8]) -> [Float] {
  stride(from: 0, to: bytes.count, by: 4).map { i in
    Float(
      bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
    )
  }
}
