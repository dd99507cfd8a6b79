import CBLAS

/// The one place that calls OpenBLAS. lorad keeps OpenBLAS at one thread (`setThreads(1)`)
/// and calls it from inside the `ComputePool`'s threads, each on its own slice, so the cores
/// never carry two sets of busy threads.
public enum BLAS {
  /// Sets OpenBLAS's thread count.
  public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

  /// C (m×n, row-major, ldc) = alpha · A (m×k, row-major, lda) · Bᵀ where B is n×k row-major (ldb) + beta · C.
  public static func gemmNT(
    m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    cblas_sgemm(
      CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
      beta, c, Int32(ldc))
  }

  /// C (m×n) = alpha · A (m×k) · B (k×n) + beta · C, all row-major.
  public static func gemmNN(
    m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    cblas_sgemm(
      CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
      beta, c, Int32(ldc))
  }

  /// C (m×n) = alpha · Aᵀ · B + beta · C where A is k×m row-major (lda) and B is k×n row-major (ldb).
  public static func gemmTN(
    m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    cblas_sgemm(
      CblasRowMajor, CblasTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
      beta, c, Int32(ldc))
  }
}
