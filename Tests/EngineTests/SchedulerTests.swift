import Adapters
import Foundation
import Model
import TestSupport
import Testing

@testable import Engine

/// Collects a scheduler's events from its compute thread, for a test to wait on.
final class EventLog: @unchecked Sendable {  // all state under `cond`
  private let cond = NSCondition()
  private var events: [EngineEvent] = []

  func append(_ e: EngineEvent) {
    cond.lock()
    events.append(e)
    cond.broadcast()
    cond.unlock()
  }

  private static func terminal(_ e: EngineEvent) -> Bool {
    switch e {
    case .done, .failed: return true
    default: return false
    }
  }

  /// Waits until `n` requests have ended (done or failed), or `timeout` seconds.
  func waitTerminal(_ n: Int, timeout: Double = 60) -> [EngineEvent] {
    cond.lock()
    defer { cond.unlock() }
    let deadline = Date(timeIntervalSinceNow: timeout)
    while events.filter(Self.terminal).count < n && Date() < deadline { _ = cond.wait(until: deadline) }
    return events
  }

  /// Waits until some event satisfies `match`.
  func wait(timeout: Double = 60, for match: (EngineEvent) -> Bool) -> Bool {
    cond.lock()
    defer { cond.unlock() }
    let deadline = Date(timeIntervalSinceNow: timeout)
    while !events.contains(where: match) && Date() < deadline { _ = cond.wait(until: deadline) }
    return events.contains(where: match)
  }

  var all: [EngineEvent] {
    cond.lock()
    defer { cond.unlock() }
    return events
  }
}

/// A tiny model and a registry of three random adapters, in a fresh directory.
struct Fixture {
  let model: LoadedModel
  let registry: AdapterRegistry

  init(seed: UInt64 = 3) throws {
    let path = TinyModel.temporaryPath("engine.gguf")
    var shape = TinyModel.Shape()
    shape.ctx = 128
    try TinyModel.write(to: path, shape: shape, seed: seed)
    model = try LoadedModel(path: path)
    let dir = TinyModel.temporaryPath("adapters")
    registry = try AdapterRegistry(directory: dir, config: model.model.config, memoryBudget: 64 << 20)
    for (i, name) in ["a", "b", "c"].enumerated() {
      _ = try registry.create(name: name, rank: 4, alpha: 8, targets: LoRAModule.allCases, seed: UInt64(i))
      let w = LoRAWeights.random(
        name: name, config: model.model.config, rank: 4, alpha: 8, bScale: 0.5, seed: 100 + UInt64(i))
      _ = try registry.publish(name: name, weights: w)
    }
  }

  /// What `Generator` alone produces for one job (the reference for served results).
  func alone(_ job: GenerationJob, context: Int) throws -> GenerationResult {
    let ctx = LlamaContext(
      model: model.model, threads: 2, maxBatch: Generator.defaultPrefillChunk, maxContext: context, maxLogitRows: 1)
    let gen = Generator(context: ctx, tokenizer: model.tokenizer)
    var leases: [AdapterLease] = []
    var parts: [AdapterMix.Part] = []
    for a in job.adapters {
      let l = try registry.acquire(a.spec)
      leases.append(l)
      parts.append(AdapterMix.Part(source: l.adapter, scale: a.scale))
    }
    defer { leases.forEach { $0.release() } }
    guard case .text(let t) = job.input else { fatalError("text jobs only") }
    let ids = model.tokenizer.encode(t, addSpecial: true, parseSpecial: true)
    return try gen.generate(
      prompt: ids, maxTokens: job.maxTokens ?? 16, sampling: job.sampling, stop: job.stop,
      adapters: parts.isEmpty ? nil : AdapterMix(parts))
  }
}

func greedyJob(_ owner: UInt64, _ id: String, _ text: String, adapters: [AdapterChoice] = [], maxTokens: Int = 12)
  -> GenerationJob
{
  GenerationJob(
    key: RequestKey(owner: owner, clientID: id), input: .text(text), adapters: adapters, maxTokens: maxTokens,
    sampling: .greedy)
}

@Suite struct SchedulerTests {
  /// Eight requests over the base, three adapters and a two-adapter mix, submitted at once and
  /// decoded together, each give the tokens and text of running alone.
  @Test func servedEqualsAlone() throws {
    let f = try Fixture()
    var config = EngineConfiguration()
    config.contextLength = 128
    config.maxSequences = 6  // fewer than the jobs: some join while others decode
    config.prefillTokensPerStep = 16
    config.prefillChunk = 8
    let log = EventLog()
    let s = Scheduler(model: f.model, registry: f.registry, configuration: config) { log.append($0) }
    s.start()
    let prompts = [
      "the quick brown fox", "hello there, how are you doing today?", "a", "once upon a time in a land far away",
      "then", "numbers: 1 2 3 4 5 6 7 8 9 10 11 12", "where is the", "in the beginning",
    ]
    let adapterSets: [[AdapterChoice]] = [
      [], [AdapterChoice(spec: "a")], [AdapterChoice(spec: "b", scale: 0.5)], [AdapterChoice(spec: "c")],
      [AdapterChoice(spec: "a"), AdapterChoice(spec: "b", scale: -0.7)], [AdapterChoice(spec: "a")], [],
      [AdapterChoice(spec: "c@0")],
    ]
    var jobs: [GenerationJob] = []
    for (i, p) in prompts.enumerated() {
      let j = greedyJob(UInt64(i % 3), "q\(i)", p, adapters: adapterSets[i], maxTokens: 10 + i)
      jobs.append(j)
      guard case .accepted = s.submit(j) else {
        Issue.record("job \(i) refused")
        return
      }
    }
    let events = log.waitTerminal(jobs.count)
    s.shutdown(grace: 5)
    var done: [RequestKey: GenerationRecord] = [:]
    var streamed: [RequestKey: String] = [:]
    for e in events {
      switch e {
      case .done(let r): done[r.key] = r
      case .token(let k, let t): streamed[k, default: ""] += t
      case .failed(let k, let why): Issue.record("\(k) failed: \(why)")
      case .started: break
      }
    }
    #expect(done.count == jobs.count)
    for j in jobs {
      let want = try f.alone(j, context: config.contextLength)
      guard let got = done[j.key] else { continue }
      #expect(got.completionTokens == want.tokens, "\(j.key): served \(got.completionTokens) alone \(want.tokens)")
      #expect(got.completionText == want.text)
      #expect(streamed[j.key, default: ""] == got.completionText, "streamed text adds up to the done text")
      #expect(got.finish.rawValue == want.finish.rawValue)
      #expect(got.logprobs.count == got.completionTokens.count)
      #expect(got.logprobs.allSatisfy { $0 <= 0 && $0.isFinite })
    }
    // Different adapters really gave different answers (the test can tell them apart).
    #expect(Set(jobs.prefix(5).map { done[$0.key]?.completionTokens ?? [] }).count > 1)
  }

  /// The logprob of a greedy token is the log-softmax of the logits the forward gave.
  @Test func logprobsAreLogSoftmax() throws {
    let f = try Fixture()
    var config = EngineConfiguration()
    config.contextLength = 64
    let log = EventLog()
    let s = Scheduler(model: f.model, registry: f.registry, configuration: config) { log.append($0) }
    s.start()
    let job = greedyJob(1, "x", "the quick", maxTokens: 3)
    _ = s.submit(job)
    let events = log.waitTerminal(1)
    s.shutdown(grace: 1)
    guard case .done(let r)? = events.last else {
      Issue.record("no done")
      return
    }
    // Recompute with a plain forward over prompt + completion, in float64.
    let ctx = LlamaContext(model: f.model.model, threads: 1, maxBatch: 64, maxContext: 64)
    let cache = ctx.makeCache()
    let b = Batch()
    let all = r.promptTokens + r.completionTokens
    for (i, t) in all.enumerated() { b.add(t, position: i, cache: cache, logits: true) }
    ctx.forward(b)
    let v = f.model.model.config.vocabSize
    for (k, tok) in r.completionTokens.enumerated() {
      let row = ctx.logits(row: r.promptTokens.count - 1 + k)
      let mx = (0..<v).map { Double(row[$0]) }.max()!
      let lse = mx + Foundation.log((0..<v).map { exp(Double(row[$0]) - mx) }.reduce(0, +))
      let want = Double(row[Int(tok)]) - lse
      #expect(abs(Double(r.logprobs[k]) - want) < 2e-3, "token \(k): \(r.logprobs[k]) vs \(want)")
    }
  }

  @Test func cancelEndsARunningRequest() throws {
    let f = try Fixture()
    var config = EngineConfiguration()
    config.contextLength = 128
    let log = EventLog()
    let s = Scheduler(model: f.model, registry: f.registry, configuration: config) { log.append($0) }
    s.start()
    var job = greedyJob(1, "long", "tell me a story", maxTokens: 120)
    job.sampling.temperature = 1  // no early end of generation likely; either way the test holds
    _ = s.submit(job)
    #expect(log.wait { if case .started = $0 { return true } else { return false } })
    let cancelled = s.cancel(job.key)
    let events = log.waitTerminal(1)
    s.shutdown(grace: 1)
    guard case .done(let r)? = events.last else {
      Issue.record("no done")
      return
    }
    if cancelled && r.completionTokens.count < r.maxTokens && r.finish != .stop {
      #expect(r.finish == .cancelled)
    }
    #expect(!s.cancel(job.key), "a finished request cannot be cancelled")
  }

  @Test func refusals() throws {
    let f = try Fixture()
    var config = EngineConfiguration()
    config.contextLength = 32
    config.maxQueued = 2
    let log = EventLog()
    let s = Scheduler(model: f.model, registry: f.registry, configuration: config) { log.append($0) }
    // Not started: submissions stay queued, so the queue bound shows.
    #expect(s.submit(greedyJob(1, "1", "x")) != .rejected(.overloaded("")))
    if case .rejected(.badRequest) = s.submit(greedyJob(1, "1", "x")) {
    } else {
      Issue.record("a duplicate id must be refused")
    }
    _ = s.submit(greedyJob(2, "1", "y"))
    if case .rejected(.overloaded) = s.submit(greedyJob(3, "1", "z")) {
    } else {
      Issue.record("the queue bound must hold")
    }
    #expect(s.stats.overloaded == 1)
    s.start()
    _ = log.waitTerminal(2)
    // Over the context: an error, never a truncation.
    let long = String(repeating: "word ", count: 40)
    _ = s.submit(greedyJob(4, "big", long))
    _ = s.submit(greedyJob(4, "bad", "hi", adapters: [AdapterChoice(spec: "nope")]))
    _ = log.waitTerminal(4)  // the queue holds two at most
    _ = s.submit(greedyJob(4, "badv", "hi", adapters: [AdapterChoice(spec: "a@9")]))
    let events = log.waitTerminal(5)
    s.shutdown(grace: 1)
    var failures: [String: EngineFailure] = [:]
    for case .failed(let k, let why) in events { failures[k.clientID] = why }
    if case .contextOverflow? = failures["big"] {
    } else {
      Issue.record("want context_overflow, got \(String(describing: failures["big"]))")
    }
    if case .adapterNotFound? = failures["bad"] {} else { Issue.record("want adapter_not_found for an unknown name") }
    if case .adapterNotFound? = failures["badv"] {
    } else {
      Issue.record("want adapter_not_found for an unknown version")
    }
  }

  /// Adapter memory for one adapter only: requests on two others take turns (the second waits
  /// for the first to finish and free its lease), and both complete.
  @Test func requestsWaitForAdapterMemory() throws {
    let f = try Fixture()
    let one = try f.registry.acquire("a")
    let bytes = one.adapter.bytes
    one.release()
    let small = try AdapterRegistry(
      directory: f.registry.directory, config: f.model.model.config, memoryBudget: bytes + bytes / 2)
    var config = EngineConfiguration()
    config.contextLength = 64
    let log = EventLog()
    let s = Scheduler(model: f.model, registry: small, configuration: config) { log.append($0) }
    s.start()
    _ = s.submit(greedyJob(1, "x", "hello", adapters: [AdapterChoice(spec: "a")], maxTokens: 20))
    _ = s.submit(greedyJob(2, "y", "hello", adapters: [AdapterChoice(spec: "b")], maxTokens: 20))
    let events = log.waitTerminal(2)
    s.shutdown(grace: 1)
    var done = 0
    for case .done(let r) in events where r.finish != .cancelled { done += 1 }
    #expect(done == 2, "\(events.filter { if case .failed = $0 { return true } else { return false } })")
    #expect(small.stats.residentBytes <= small.memoryBudget)
  }

  /// Shutdown with a request running and no grace cancels it and returns.
  @Test func shutdownCancelsWhatIsLeft() throws {
    let f = try Fixture()
    var config = EngineConfiguration()
    config.contextLength = 128
    let log = EventLog()
    let s = Scheduler(model: f.model, registry: f.registry, configuration: config) { log.append($0) }
    s.start()
    var job = greedyJob(1, "long", "tell me a story", maxTokens: 120)
    job.sampling.temperature = 1
    _ = s.submit(job)
    _ = log.wait { if case .started = $0 { return true } else { return false } }
    s.shutdown(grace: 0)
    #expect(log.all.contains { if case .done = $0 { return true } else { return false } })
    if case .rejected(.overloaded) = s.submit(greedyJob(1, "after", "x")) {
    } else {
      Issue.record("a stopped scheduler must refuse")
    }
    #expect(s.stats.live == 0)
  }
}
