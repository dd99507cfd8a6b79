import CKernels

/// Which SIMD level the kernels run with (0 scalar, 1 AVX2, 2 AVX-512, 3 AVX-512 with AMX tiles).
public enum CPUFeatures {
  public static var isa: Int { Int(lk_isa()) }
  public static var best: Int { Int(lk_cpu_isa()) }
  /// Pins the kernels to a level (clamped to what the CPU has); returns the level in force.
  @discardableResult public static func pin(_ level: Int) -> Int { Int(lk_set_isa(Int32(level))) }
}
