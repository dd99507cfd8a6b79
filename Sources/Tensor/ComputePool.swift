import CKernels

/// The compute threads: the caller plus `threads - 1` workers of the C pool, which spin briefly
/// between jobs and then sleep. A job is split into chunks that free threads claim, so one
/// thread the OS does not schedule never holds a job up. Used from one thread at a time (the
/// compute thread that owns it).
public final class ComputePool: @unchecked Sendable {  // used only from its owning compute thread
  public let threads: Int
  let raw: OpaquePointer

  public init(threads: Int) {
    self.threads = max(1, threads)
    raw = lk_pool_create(Int32(self.threads))
  }

  deinit { lk_pool_destroy(raw) }

  /// Runs `body(ith, nth)` once for every `ith` in `0..<nth`, `nth` = `chunks` (default: one per
  /// thread); returns when all are done. Two runs of one `ith` never overlap, so with the default
  /// `ith` may select a per-thread scratch. Allocates nothing.
  public func run(chunks: Int? = nil, _ body: (Int, Int) -> Void) {
    withoutActuallyEscaping(body) { b in
      var box = b
      withUnsafeMutablePointer(to: &box) { p in
        lk_pool_run_chunks(
          raw,
          { ctx, ith, nth in
            ctx!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(ith), Int(nth))
          }, p, Int32(chunks ?? threads))
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
