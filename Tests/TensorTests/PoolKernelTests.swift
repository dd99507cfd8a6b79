import CKernels
import Foundation
import Testing

/// The thread pool: every thread index runs exactly once per job, over many jobs, with the
/// workers spinning, parked, and woken from sleep.
struct PoolKernelTests {
  /// Per-job counters: slot ith counts the runs of thread ith (each slot touched by one thread).
  /// Raw memory, not a Swift array: `withUnsafeMutableBufferPointer` on an array moves its
  /// buffer out for the duration, so two threads in it at once would race on the array itself.
  final class Counts {
    let threads: Int
    let hits: UnsafeMutablePointer<Int>  // slot ith at ith * 16, one cache line per slot
    let badNth: UnsafeMutablePointer<Int>  // per slot too
    init(threads: Int) {
      self.threads = threads
      hits = .allocate(capacity: threads * 16)
      hits.initialize(repeating: 0, count: threads * 16)
      badNth = .allocate(capacity: threads * 16)
      badNth.initialize(repeating: 0, count: threads * 16)
    }
    deinit {
      hits.deallocate()
      badNth.deallocate()
    }
    var wrongNth: Int { (0..<threads).reduce(0) { $0 + badNth[$1 * 16] } }
  }

  static let count: lk_task_fn = { ctx, ith, nth in
    let c = Unmanaged<Counts>.fromOpaque(ctx!).takeUnretainedValue()
    c.hits[Int(ith) * 16] += 1
    if Int(nth) != c.threads { c.badNth[Int(ith) * 16] += 1 }
  }

  func runJobs(_ pool: OpaquePointer, _ counts: Counts, _ jobs: Int) {
    let ctx = Unmanaged.passUnretained(counts).toOpaque()
    for _ in 0..<jobs { lk_pool_run(pool, Self.count, ctx) }
  }

  @Test(arguments: [1, 2, 3, 4])
  func everyIndexRunsOncePerJob(threads: Int) {
    let pool = lk_pool_create(Int32(threads))!
    defer { lk_pool_destroy(pool) }
    #expect(Int(lk_pool_threads(pool)) == threads)
    let counts = Counts(threads: threads)
    runJobs(pool, counts, 2000)
    // parked workers sleep at once and come back for the next job
    lk_pool_park(pool)
    usleep(2000)
    runJobs(pool, counts, 10)
    // workers that slept after their spin timeout
    usleep(5000)
    runJobs(pool, counts, 10)
    #expect(counts.wrongNth == 0)
    for ith in 0..<threads { #expect(counts.hits[ith * 16] == 2020, "thread \(ith)") }
  }

  @Test func destroyWhileWorkersSleep() {
    let pool = lk_pool_create(2)!
    let counts = Counts(threads: 2)
    runJobs(pool, counts, 3)
    usleep(3000)
    lk_pool_destroy(pool)
    #expect(counts.hits[0] == 3 && counts.hits[16] == 3)
  }
}
