import CKernels

/// Tensor element types, numbered as ggml numbers them (the GGUF on-disk code), with ggml's
/// exact block sizes. Only the types lorad computes with are listed; any other code is refused
/// by name when a file is read.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
  case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, q4_K = 12, q6_K = 14, bf16 = 30

  /// Elements per block.
  public var blockElements: Int {
    switch self {
    case .f32, .f16, .bf16: return 1
    case .q4_0, .q4_1, .q8_0: return 32
    case .q4_K, .q6_K: return 256
    }
  }
  /// Bytes per block (ggml-common.h).
  public var blockBytes: Int {
    switch self {
    case .f32: return 4
    case .f16, .bf16: return 2
    case .q4_0: return 18  // f16 d; u8 qs[16]
    case .q4_1: return 20  // f16 d, m; u8 qs[16]
    case .q8_0: return 34  // f16 d; i8 qs[32]
    case .q4_K: return 144  // f16 d, dmin; u8 scales[12]; u8 qs[128]
    case .q6_K: return 210  // u8 ql[128], qh[64]; i8 scales[16]; f16 d
    }
  }
  public var isQuantized: Bool { blockElements > 1 }
  /// Bytes of one row of `n` elements, or nil when `n` is not a whole number of blocks.
  public func rowBytes(_ n: Int) -> Int? {
    n % blockElements == 0 ? n / blockElements * blockBytes : nil
  }
  public var description: String {
    switch self {
    case .f32: return "F32"
    case .f16: return "F16"
    case .bf16: return "BF16"
    case .q4_0: return "Q4_0"
    case .q4_1: return "Q4_1"
    case .q8_0: return "Q8_0"
    case .q4_K: return "Q4_K"
    case .q6_K: return "Q6_K"
    }
  }
  /// The C kernels' code for this type.
  public var code: Int32 { Int32(rawValue) }
}
