import CKernels
import Foundation

/// A weight matrix of `rows × cols` in its on-disk (possibly 4-bit) layout, read in place:
/// row r starts at `data + r * rowBytes`. Never dequantized as a whole except into a caller's
/// scratch buffer for batched products; copied only into the prepacked tile layout (`pre`), as
/// 4-bit as the file where the file is.
public struct WeightMatrix: @unchecked Sendable {  // points into a read-only mapping that outlives it
  public let type: GGMLType
  public let rows: Int
  public let cols: Int
  public let data: UnsafeRawPointer
  public let rowBytes: Int
  /// The same rows prepacked in 16-row tiles (`lk_prepack_rows`), or nil: the products (AVX-512
  /// VNNI and AMX, one token or many) read it instead of `data`'s 16 interleaved rows. Owned by
  /// a `PrepackedWeights` that outlives this matrix.
  public private(set) var pre: UnsafeRawPointer?

  public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer) {
    precondition(cols % type.blockElements == 0)
    self.type = type
    self.rows = rows
    self.cols = cols
    self.data = data
    self.rowBytes = type.rowBytes(cols)!
  }

  /// Bytes of this matrix prepacked; 0 when the CPU or the matrix cannot use it.
  public var prepackBytes: Int { Int(lk_prepack_bytes(type.code, Int64(rows), Int64(cols))) }

  /// This matrix reading its prepacked copy at `pre` (written by `PrepackedWeights`).
  func withPrepacked(_ pre: UnsafeRawPointer) -> WeightMatrix {
    var m = self
    m.pre = pre
    return m
  }

  /// Bytes of one activation row quantized for products with this matrix.
  public var activationRowBytes: Int { Int(lk_act_row_bytes(type.code, Int64(cols))) }

  /// dst[0..<cols] = row r, dequantized.
  public func dequantizeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
    lk_dequantize_row(type.code, data + r * rowBytes, dst, Int64(cols))
  }
}

/// One allocation holding the prepacked copies of a model's matrices (see
/// `WeightMatrix.pre`): ~the size of the 4-bit weights again, in exchange for products that read
/// one stream instead of 16 interleaved rows (`LlamaWeights` then drops the file's pages of the
/// copied matrices from the process). Empty where the CPU has no AVX-512. `LK_PREPACK=0` in the
/// environment turns it off (for side-by-side runs).
public final class PrepackedWeights: @unchecked Sendable {  // written once in init, read-only after
  public let bytes: Int
  private let base: UnsafeMutableRawPointer?

  /// Prepacks every matrix of `matrices` that can be; `apply` receives each (index, prepacked matrix).
  public init(_ matrices: [WeightMatrix], apply: (Int, WeightMatrix) -> Void) {
    let off = ProcessInfo.processInfo.environment["LK_PREPACK"] == "0"
    let sizes = matrices.map { off ? 0 : ($0.prepackBytes + 63) & ~63 }
    bytes = sizes.reduce(0, +)
    guard bytes > 0 else {
      base = nil
      return
    }
    let base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    self.base = base
    var at = 0
    for (i, m) in matrices.enumerated() where sizes[i] > 0 {
      lk_prepack_rows(m.type.code, m.data, Int64(m.rows), Int64(m.cols), base + at)
      apply(i, m.withPrepacked(UnsafeRawPointer(base + at)))
      at += sizes[i]
    }
  }

  deinit { base?.deallocate() }
}
