import CKernels

/// Row conversions between float and the other element types, through the kernels (F16C /
/// AVX-512 where the CPU has them; bit exact, round to nearest even).
public enum RowConversion {
  /// dst[0..<n] = src (of `type`, n elements) as floats.
  public static func toFloat(_ type: GGMLType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
    lk_dequantize_row(type.code, src, dst, Int64(n))
  }
  /// dst = src[0..<n] converted (or quantized) to `type`.
  public static func fromFloat(_ type: GGMLType, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ n: Int)
  {
    lk_quantize_row(type.code, src, dst, Int64(n))
  }

  /// dst = src[0..<n] in `type` for serving: Q8_0 through the SIMD quantizer the activations use
  /// (the same ggml blocks, many times faster than the scalar reference of `fromFloat`).
  public static func fromFloatForServing(
    _ type: GGMLType, _ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ n: Int
  ) {
    if type == .q8_0 {
      lk_quantize_act(type.code, src, dst, Int64(n))
    } else {
      lk_quantize_row(type.code, src, dst, Int64(n))
    }
  }
}
