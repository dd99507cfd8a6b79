import Adapters
import Foundation
import Model

#if canImport(Glibc)
  import Glibc
#endif

/// The online learner: turns an adapter's accumulated thumbs-up / thumbs-down into a new
/// version, gated, published atomically and made current.
///
/// One background thread does all the training (its niceness and `threads` bound its share of
/// the CPU; the training and gate contexts it owns run their pools at that niceness). It wakes
/// every `pollInterval` to look at `FeedbackLog.newFeedbackCounts()` and learns for each
/// learnable adapter with at least `batch` new effective events (when `automatic`), and serves
/// requests: `submit(adapter:completion:)` queues one and calls back with its run;
/// `learn(adapter:)` queues one and waits for it.
///
/// A run (`Learner+Run.swift`) trains on a snapshot of the log (held-out slice excluded),
/// starting from the adapter's current version, against its anchor as the reference policy;
/// `CandidateGate` decides; the candidate is written as `versions/N/` either way — current when
/// it passed, with a `rejected` marker when it did not — and the run is recorded in the log.
///
/// Thread safety: `lock` (a condition) guards the queue and `running`; everything else (the
/// contexts, the caches) belongs to the learner thread.
public final class Learner: @unchecked Sendable {  // queue under `lock`; training state owned by the learner thread
  public let model: LoadedModel
  public let registry: AdapterRegistry
  public let log: FeedbackLog
  public let configuration: LearnerConfiguration

  typealias Completion = @Sendable (Result<LearnerRun, Error>) -> Void
  struct Job {
    var adapter: String
    var completion: Completion
  }

  let lock = NSCondition()
  var queue: [Job] = []
  var thread: Thread?
  var stopping = false
  var busy = false

  // Owned by the learner thread.
  var trainer: LoRATrainingContext?
  var servingContext: LlamaContext?
  /// Perplexity of the calibration text under each reference, by "name@anchor".
  var referencePerplexity: [String: Double] = [:]
  /// The reference's gate samples, by "name@anchor" and prompt (the reference never changes
  /// for an anchor, and the sampling seeds are fixed). Learner thread only.
  var referenceSamples: [String: [[Int32]: Sample]] = [:]
  /// log π of held-out examples (by log sequence number) under "name@version", computed by that
  /// version's gate when it was the candidate. Learner thread only.
  var heldOutLogProbs: [String: [Int64: Double]] = [:]
  /// log π_ref of examples the anchor did not serve, by "name@anchor" and log sequence number.
  /// Learner thread only.
  var referenceLogProbCache: [String: [Int64: Double]] = [:]
  /// Adapters that failed with an error: not retried automatically until new feedback arrives.
  var failedAt: [String: Int64] = [:]

  public init(model: LoadedModel, registry: AdapterRegistry, log: FeedbackLog, configuration: LearnerConfiguration) {
    self.model = model
    self.registry = registry
    self.log = log
    self.configuration = configuration
  }

  /// Starts the background thread (idempotent).
  public func start() {
    lock.lock()
    defer { lock.unlock() }
    guard thread == nil, !stopping else { return }
    let t = Thread { [weak self] in self?.loop() }
    t.name = "lorad-learner"
    t.stackSize = 8 << 20
    thread = t
    t.start()
  }

  /// Throws `stopped` once `stop()` has been called: a run checks between its steps, so a daemon
  /// shutting down waits for one training step or one gate sample, not for a whole run.
  func checkStopping() throws {
    lock.lock()
    let s = stopping
    lock.unlock()
    if s { throw LearnerError.stopped }
  }

  /// Stops the thread: the run in progress ends at its next step without publishing anything
  /// (it fails with `stopped`), and queued requests fail with `stopped`.
  public func stop() {
    lock.lock()
    stopping = true
    let dropped = queue
    queue.removeAll()
    lock.broadcast()
    while busy { lock.wait() }
    lock.unlock()
    for j in dropped { j.completion(.failure(LearnerError.stopped)) }
  }

  /// Queues a run for `adapter`; `completion` gets its record (or the error) on the learner thread.
  public func submit(adapter: String, completion: @escaping @Sendable (Result<LearnerRun, Error>) -> Void) {
    start()
    lock.lock()
    if stopping {
      lock.unlock()
      completion(.failure(LearnerError.stopped))
      return
    }
    queue.append(Job(adapter: adapter, completion: completion))
    lock.broadcast()
    lock.unlock()
  }

  /// Runs the learner on `adapter` now (on the learner thread) and returns what it did.
  @discardableResult
  public func learn(adapter: String) throws -> LearnerRun {
    let done = DispatchSemaphore(value: 0)
    let box = ResultBox()
    submit(adapter: adapter) { r in
      box.set(r)
      done.signal()
    }
    done.wait()
    return try box.get()
  }

  /// Whether a run is in progress (for stats and tests).
  public var isTraining: Bool { lock.withLock { busy } }

  // MARK: - the thread

  func loop() {
    #if canImport(Glibc)
      // On Linux, PRIO_PROCESS with who = 0 sets the calling thread's niceness only; threads it
      // creates later (the compute pools of its contexts) inherit it.
      _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, configuration.niceness)
    #endif
    var lastPoll = Date.distantPast
    while true {
      lock.lock()
      while queue.isEmpty && !stopping
        && !(configuration.automatic && Date().timeIntervalSince(lastPoll) >= configuration.pollInterval)
      {
        _ = lock.wait(until: Date(timeIntervalSinceNow: configuration.pollInterval))
      }
      if stopping {
        lock.unlock()
        return
      }
      var job: Job?
      if !queue.isEmpty { job = queue.removeFirst() }
      busy = true
      lock.unlock()
      if let job {
        let r = Result { try run(adapter: job.adapter) }
        job.completion(r)
      } else {
        lastPoll = Date()
        autoRun()
      }
      lock.lock()
      busy = false
      lock.broadcast()
      lock.unlock()
    }
  }

  /// One automatic round: every learnable adapter with `batch` new events learns once.
  func autoRun() {
    guard let counts = try? log.newFeedbackCounts() else { return }
    let learnable = Set(registry.list().filter(\.learnable).map(\.name))
    for c in counts where c.total >= configuration.batch && learnable.contains(c.adapter) {
      if let f = failedAt[c.adapter], f >= c.latestSeq { continue }
      do {
        _ = try run(adapter: c.adapter)
        failedAt[c.adapter] = nil
      } catch {
        failedAt[c.adapter] = c.latestSeq
        FileHandle.standardError.write(Data("lorad: learner: \(c.adapter): \(error)\n".utf8))
      }
      if lock.withLock({ stopping || !queue.isEmpty }) { return }
    }
  }
}

/// A result handed from the learner thread to a waiting caller.
final class ResultBox: @unchecked Sendable {  // `value` under `lock`
  let lock = NSLock()
  var value: Result<LearnerRun, Error>?
  func set(_ r: Result<LearnerRun, Error>) { lock.withLock { value = r } }
  func get() throws -> LearnerRun {
    guard let v = lock.withLock({ value }) else { throw LearnerError.stopped }
    return try v.get()
  }
}
