import Adapters
import Foundation
import Model

/// Continuous batching on one compute thread: at every step all live sequences — whatever
/// their adapters — advance together in one batched forward; new requests join at the next
/// step (their prompts fed in chunks so running streams keep flowing); finished and cancelled
/// ones leave. Admission is round-robin over connections, so one busy client cannot starve
/// the others; a bound on live sequences and on queued requests, past which `submit` answers
/// `overloaded` at once.
///
/// Threads: `submit`, `cancel`, `cancelAll`, `stats` and `shutdown` may be called from any
/// thread; they touch only the fields marked "under lock". Everything else — the model
/// context, the KV caches, the live sequences, the adapter leases — belongs to the compute
/// thread, which also calls `onEvent` (in order per request: started, tokens, done; or failed).
public final class Scheduler: @unchecked Sendable {  // shared fields under `lock`; the rest compute thread only
  public let configuration: EngineConfiguration
  public let model: LoadedModel
  public let registry: AdapterRegistry?
  let onEvent: @Sendable (EngineEvent) -> Void

  /// A submitted request the compute thread has not admitted yet.
  struct Pending {
    var job: GenerationJob
    var request: String
    var received: Date
    var receivedNanos: UInt64
  }

  // Under lock.
  let lock = NSCondition()
  var inbox: [Pending] = []
  var cancels: [RequestKey] = []
  var closedOwners: [UInt64] = []
  /// Adapter loads finished by the loader, by request: the leases, or why they failed.
  var loaded: [RequestKey: Result<[AdapterLease], Error>] = [:]
  /// Submitted and not yet done or failed.
  var inFlight: Set<RequestKey> = []
  /// In-flight requests per connection.
  var perOwner: [UInt64: Int] = [:]
  /// In the inbox or waiting for admission.
  var queuedCount = 0
  var liveCount = 0
  var accepting = true
  var cancelEverything = false
  var stopRequested = false
  var threadFinished = false
  var shared = EngineStats()
  var serial: UInt64 = 0
  let idPrefix: String

  // Compute thread only.
  let context: LlamaContext
  let batch: Batch
  var waiting: [UInt64: [Pending]] = [:]
  /// Owners with waiting requests, in admission order (round robin).
  var rotation: [UInt64] = []
  var waitingCount = 0
  /// Requests whose adapters are being read from disk (off this thread, by `loader`).
  var loading: [RequestKey: Pending] = [:]
  /// Leases the loader got for a request, used when it is admitted.
  var preloaded: [RequestKey: [AdapterLease]] = [:]
  /// Requests whose adapters did not fit beside the leased ones: back in line when a sequence ends.
  var blocked: [Pending] = []
  /// Reads adapters from disk so that a cold load never stalls the running streams.
  let loader = DispatchQueue(label: "lorad-adapter-loader")
  /// Live sequences ordered by `mixKey`, so rows of one adapter mix form one run.
  var live: [LiveSequence] = []
  /// The sequences whose rows asked for logits this step, in batch order.
  var logitSequences: [LiveSequence] = []
  var freeCaches: [KVCache] = []
  /// Adapter mixes in use, shared by the sequences of the same adapters and scales.
  var mixes: [String: (mix: AdapterMix, users: Int)] = [:]
  /// Per logit row of a step: the sampled token and its log-probability.
  let picks: UnsafeMutablePointer<(token: Int32, logprob: Float)>
  var local = EngineStats()

  /// Builds the compute context (activation buffers for `maxBatchRows`); `start()` begins serving.
  public init(
    model: LoadedModel, registry: AdapterRegistry?, configuration: EngineConfiguration = EngineConfiguration(),
    onEvent: @escaping @Sendable (EngineEvent) -> Void
  ) {
    self.model = model
    self.registry = registry
    self.configuration = configuration
    self.onEvent = onEvent
    context = LlamaContext(
      model: model.model, threads: configuration.threads,
      maxBatch: max(configuration.prefillTokensPerStep, configuration.prefillChunk) + configuration.maxSequences,
      maxContext: configuration.contextLength, maxLogitRows: configuration.maxSequences,
      kvType: configuration.kvType)
    batch = Batch(capacity: context.maxBatch)
    picks = .allocate(capacity: configuration.maxSequences)
    var g = SystemRandomNumberGenerator()
    idPrefix = String(UInt32(Date().timeIntervalSince1970), radix: 16) + String(g.next() & 0xFFFFFF, radix: 16)
  }

  deinit { picks.deallocate() }

  /// Starts the compute thread.
  public func start() {
    let t = Thread { [self] in run() }
    t.name = "lorad-compute"
    t.stackSize = 8 << 20
    t.start()
  }

  // MARK: any thread

  /// Queues `job`, or refuses it at once: a running request of the same key, a full queue, or
  /// a server shutting down.
  public func submit(_ job: GenerationJob) -> SubmitResult {
    lock.lock()
    defer { lock.unlock() }
    guard accepting else { return .rejected(.overloaded("the server is shutting down; retry on another instance")) }
    guard !inFlight.contains(job.key) else {
      return .rejected(
        .badRequest("request id '\(job.key.clientID)' is still running on this connection; use a new id per request"))
    }
    guard queuedCount < configuration.maxQueued else {
      shared.overloaded += 1
      return .rejected(
        .overloaded(
          "\(queuedCount) requests are already waiting (the limit is \(configuration.maxQueued)); retry later"))
    }
    guard perOwner[job.key.owner, default: 0] < configuration.maxPerConnection else {
      shared.overloaded += 1
      return .rejected(
        .overloaded(
          "this connection already has \(configuration.maxPerConnection) requests waiting or running; "
            + "wait for some to finish"))
    }
    serial += 1
    let request = "r-\(idPrefix)-\(serial)"
    inbox.append(
      Pending(job: job, request: request, received: Date(), receivedNanos: DispatchTime.now().uptimeNanoseconds))
    inFlight.insert(job.key)
    perOwner[job.key.owner, default: 0] += 1
    queuedCount += 1
    shared.submitted += 1
    lock.broadcast()
    return .accepted(request: request)
  }

  /// Cancels a queued or running request: it ends with finish `cancelled` within a step.
  /// False when no such request is in flight.
  @discardableResult
  public func cancel(_ key: RequestKey) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    guard inFlight.contains(key) else { return false }
    cancels.append(key)
    lock.broadcast()
    return true
  }

  /// Drops every request of a connection that has gone (no events are needed, but they come).
  public func cancelAll(owner: UInt64) {
    lock.lock()
    closedOwners.append(owner)
    lock.broadcast()
    lock.unlock()
  }

  /// A snapshot of the counters.
  public var stats: EngineStats {
    lock.lock()
    defer { lock.unlock() }
    var s = shared
    s.live = liveCount
    s.queued = queuedCount
    return s
  }

  /// Stops taking requests, lets in-flight ones finish for up to `grace` seconds, cancels what
  /// is left, and stops the compute thread. Returns how many requests were cancelled.
  @discardableResult
  public func shutdown(grace: TimeInterval) -> Int {
    lock.lock()
    defer { lock.unlock() }
    accepting = false
    let deadline = Date(timeIntervalSinceNow: max(0, grace))
    while !inFlight.isEmpty && Date() < deadline { _ = lock.wait(until: deadline) }
    let left = inFlight.count
    if left > 0 {
      cancelEverything = true
      lock.broadcast()
      while !inFlight.isEmpty { lock.wait() }
    }
    stopRequested = true
    lock.broadcast()
    while !threadFinished { lock.wait() }
    return left
  }

  /// A request is no longer in flight. Under lock.
  func left(_ key: RequestKey) {
    inFlight.remove(key)
    if let n = perOwner[key.owner], n > 1 { perOwner[key.owner] = n - 1 } else { perOwner[key.owner] = nil }
  }

  // MARK: compute thread

  private func run() {
    while true {
      lock.lock()
      while inbox.isEmpty && cancels.isEmpty && closedOwners.isEmpty && loaded.isEmpty && live.isEmpty
        && waitingCount == 0 && !stopRequested && !cancelEverything
      {
        lock.wait()
      }
      if stopRequested && live.isEmpty && waitingCount == 0 && inbox.isEmpty && loading.isEmpty && blocked.isEmpty {
        threadFinished = true
        lock.broadcast()
        lock.unlock()
        return
      }
      let arrived = inbox
      inbox.removeAll(keepingCapacity: true)
      let cancelled = cancels
      cancels.removeAll(keepingCapacity: true)
      let closed = closedOwners
      closedOwners.removeAll(keepingCapacity: true)
      let everything = cancelEverything
      let loads = loaded
      loaded.removeAll(keepingCapacity: true)
      lock.unlock()

      for p in arrived { enqueue(p) }
      for (key, result) in loads { loadFinished(key, result) }
      for k in cancelled { cancelRequest(k) }
      for o in closed { cancelOwner(o) }
      if everything {
        for o in Set(waiting.keys).union(loading.keys.map(\.owner)).union(blocked.map(\.job.key.owner)) {
          cancelOwner(o)
        }
        for s in live { s.cancelled = true }
      }
      removeCancelled()
      admit()
      if live.isEmpty {
        // Waiting only on adapter memory held elsewhere (no sequence of ours will free it): look
        // again shortly.
        if !blocked.isEmpty {
          lock.lock()
          _ = lock.wait(until: Date(timeIntervalSinceNow: 0.05))
          lock.unlock()
          for p in blocked.reversed() { unpop(p) }
          blocked.removeAll()
        }
        continue
      }
      step()
    }
  }

  private func enqueue(_ p: Pending) {
    let o = p.job.key.owner
    if waiting[o] == nil || waiting[o]!.isEmpty { rotation.append(o) }
    waiting[o, default: []].append(p)
    waitingCount += 1
  }

  /// The next waiting request, taking connections in turn.
  func popWaiting() -> Pending? {
    guard !rotation.isEmpty else { return nil }
    let o = rotation.removeFirst()
    var q = waiting[o]!
    let p = q.removeFirst()
    if q.isEmpty { waiting[o] = nil } else { waiting[o] = q; rotation.append(o) }
    waitingCount -= 1
    return p
  }

  /// Puts back a request that could not be admitted yet, first in its connection's line.
  func unpop(_ p: Pending) {
    let o = p.job.key.owner
    if waiting[o] == nil || waiting[o]!.isEmpty {
      rotation.insert(o, at: 0)
      waiting[o] = [p]
    } else {
      waiting[o]!.insert(p, at: 0)
    }
    waitingCount += 1
  }

  private func cancelRequest(_ key: RequestKey) {
    if let s = live.first(where: { $0.job.key == key }) {
      s.cancelled = true
      return
    }
    if let p = loading.removeValue(forKey: key) {
      endUnstarted(p)
      return
    }
    if let i = blocked.firstIndex(where: { $0.job.key == key }) {
      endUnstarted(blocked.remove(at: i))
      return
    }
    guard var q = waiting[key.owner], let i = q.firstIndex(where: { $0.job.key == key }) else { return }
    let p = q.remove(at: i)
    waitingCount -= 1
    if q.isEmpty {
      waiting[key.owner] = nil
      rotation.removeAll { $0 == key.owner }
    } else {
      waiting[key.owner] = q
    }
    endUnstarted(p)
  }

  private func cancelOwner(_ owner: UInt64) {
    for s in live where s.job.key.owner == owner { s.cancelled = true }
    for (k, p) in loading where k.owner == owner {
      loading[k] = nil
      endUnstarted(p)
    }
    for p in blocked where p.job.key.owner == owner { endUnstarted(p) }
    blocked.removeAll { $0.job.key.owner == owner }
    if let q = waiting.removeValue(forKey: owner) {
      rotation.removeAll { $0 == owner }
      waitingCount -= q.count
      for p in q { endUnstarted(p) }
    }
  }

  /// A request cancelled before it was admitted: it ends with `done`, finish `cancelled`.
  private func endUnstarted(_ p: Pending) {
    for l in preloaded.removeValue(forKey: p.job.key) ?? [] { l.release() }
    let now = DispatchTime.now().uptimeNanoseconds
    let record = GenerationRecord(
      request: p.request, key: p.job.key, who: p.job.who, adapters: [], promptText: "", promptTokens: [],
      completionText: "", completionTokens: [], logprobs: [], sampling: p.job.sampling,
      maxTokens: p.job.maxTokens ?? configuration.defaultMaxTokens, stop: p.job.stop, finish: .cancelled,
      received: p.received, firstTokenSeconds: nil, totalSeconds: Double(now - p.receivedNanos) / 1e9)
    lock.lock()
    left(p.job.key)
    queuedCount -= 1
    shared.cancelled += 1
    lock.broadcast()
    lock.unlock()
    onEvent(.done(record))
  }
}
