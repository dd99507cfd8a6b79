import CKernels

/// A weight matrix of `rows × cols` in its on-disk (possibly 4-bit) layout, read in place:
/// row r starts at `data + r * rowBytes`. Never copied, never dequantized as a whole except
/// into a caller's scratch buffer for batched products.
public struct WeightMatrix: @unchecked Sendable {  // points into a read-only mapping that outlives it
  public let type: GGMLType
  public let rows: Int
  public let cols: Int
  public let data: UnsafeRawPointer
  public let rowBytes: Int

  public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer) {
    precondition(cols % type.blockElements == 0)
    self.type = type
    self.rows = rows
    self.cols = cols
    self.data = data
    self.rowBytes = type.rowBytes(cols)!
  }

  /// Bytes of one activation row quantized for products with this matrix.
  public var activationRowBytes: Int { Int(lk_act_row_bytes(type.code, Int64(cols))) }

  /// dst[0..<cols] = row r, dequantized.
  public func dequantizeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
    lk_dequantize_row(type.code, data + r * rowBytes, dst, Int64(cols))
  }
}
