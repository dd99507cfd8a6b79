import CKernels

/// The compute threads: the caller plus `threads - 1` workers of the C pool, which spin briefly
/// between jobs and then sleep. Used from one thread at a time (the compute thread that owns it).
public final class ComputePool: @unchecked Sendable {  // used only from its owning compute thread
  public let threads: Int
  let raw: OpaquePointer

  public init(threads: Int) {
    self.threads = max(1, threads)
    raw = lk_pool_create(Int32(self.threads))
  }

  deinit { lk_pool_destroy(raw) }

  /// Runs `body(ith, nth)` for every thread index; returns when all are done. Allocates nothing.
  public func run(_ body: (Int, Int) -> Void) {
    withoutActuallyEscaping(body) { b in
      var box = b
      withUnsafeMutablePointer(to: &box) { p in
        lk_pool_run(
          raw,
          { ctx, ith, nth in
            ctx!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(ith), Int(nth))
          }, p)
      }
    }
  }

  /// Splits `0..<count` into contiguous chunks, one per thread, and runs `body` on each non-empty one.
  public func parallelFor(_ count: Int, _ body: (Range<Int>) -> Void) {
    if threads == 1 || count <= 1 {
      if count > 0 { body(0..<count) }
      return
    }
    run { ith, nth in
      let lo = count * ith / nth
      let hi = count * (ith + 1) / nth
      if lo < hi { body(lo..<hi) }
    }
  }
}
