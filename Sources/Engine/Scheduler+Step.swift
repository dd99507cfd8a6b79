import Adapters
import CKernels
import Foundation
import Model

extension Scheduler {
  /// Why a waiting request could not be admitted.
  enum AdmitError: Error {
    case failed(EngineFailure)
    /// The adapters do not fit beside those leased by running sequences: wait for one to end.
    case noRoom
    /// An adapter is not resident: the loader reads it; the request comes back when it has.
    case loading
  }

  // MARK: admission

  /// Admits waiting requests, connections in turn, while there is room for live sequences.
  func admit() {
    while live.count < configuration.maxSequences, let p = popWaiting() {
      do {
        let s = try makeSequence(p)
        let i = live.firstIndex { $0.mixKey > s.mixKey } ?? live.count
        live.insert(s, at: i)
        lock.lock()
        queuedCount -= 1
        liveCount = live.count
        shared.peakLive = max(shared.peakLive, live.count)
        lock.unlock()
        onEvent(.started(p.job.key, request: p.request, adapters: s.applied))
      } catch AdmitError.noRoom {
        blocked.append(p)
      } catch AdmitError.loading {
        loading[p.job.key] = p
      } catch AdmitError.failed(let f) {
        fail(p, f)
      } catch {
        fail(p, .internalError("\(error)"))
      }
    }
  }

  /// The loader is done with a request's adapters: back in line (first of its connection) with
  /// the leases, or failed, or blocked until a sequence ends.
  func loadFinished(_ key: RequestKey, _ result: Result<[AdapterLease], Error>) {
    guard let p = loading.removeValue(forKey: key) else {
      // Cancelled meanwhile.
      if case .success(let leases) = result { leases.forEach { $0.release() } }
      return
    }
    switch result {
    case .success(let leases):
      preloaded[key] = leases
      unpop(p)
    case .failure(let e as RegistryError):
      if case .budgetExhausted = e { blocked.append(p) } else { fail(p, Self.failure(e)) }
    case .failure(let e):
      fail(p, .internalError("adapter could not be loaded: \(e)"))
    }
  }

  static func failure(_ e: RegistryError) -> EngineFailure {
    switch e {
    case .badName, .unknownAdapter, .unknownVersion, .badCurrent: return .adapterNotFound(e.description)
    default: return .internalError(e.description)
    }
  }

  /// Resolves a request's adapters and leases them when all are resident; otherwise hands the
  /// load to the loader (`AdmitError.loading`).
  private func lease(_ job: GenerationJob, registry: AdapterRegistry) throws -> [AdapterLease] {
    if let leases = preloaded.removeValue(forKey: job.key) { return leases }
    var refs: [AdapterRef] = []
    do {
      for choice in job.adapters { refs.append(try registry.resolve(choice.spec)) }
    } catch let e as RegistryError {
      throw AdmitError.failed(Self.failure(e))
    } catch {
      throw AdmitError.failed(.adapterNotFound("\(error)"))
    }
    if refs.allSatisfy({ registry.isResident($0) }) {
      var leases: [AdapterLease] = []
      do {
        for r in refs { leases.append(try registry.acquire(r)) }
        return leases
      } catch {
        leases.forEach { $0.release() }  // evicted meanwhile: load it off this thread
      }
    }
    let key = job.key
    let wanted = refs
    loader.async { [self] in
      var leases: [AdapterLease] = []
      let result: Result<[AdapterLease], Error>
      do {
        for r in wanted { leases.append(try registry.acquire(r)) }
        result = .success(leases)
      } catch {
        leases.forEach { $0.release() }
        result = .failure(error)
      }
      lock.lock()
      loaded[key] = result
      lock.broadcast()
      lock.unlock()
    }
    throw AdmitError.loading
  }

  private func fail(_ p: Pending, _ f: EngineFailure) {
    lock.lock()
    left(p.job.key)
    queuedCount -= 1
    shared.failed += 1
    lock.broadcast()
    lock.unlock()
    onEvent(.failed(p.job.key, f))
  }

  /// Tokenizes the request, checks it fits the context, leases its adapters, and gives it a cache.
  private func makeSequence(_ p: Pending) throws -> LiveSequence {
    let job = p.job
    let text: String
    let prompt: [Int32]
    switch job.input {
    case .text(let t):
      text = t
      prompt = model.tokenizer.encode(t, addSpecial: true, parseSpecial: true)
    case .chat(let messages):
      guard let template = model.template else {
        throw AdmitError.failed(.badRequest("this model has no chat template lorad knows; send a raw `prompt` instead"))
      }
      text = template.render(messages)
      prompt = model.tokenizer.encode(text, addSpecial: true, parseSpecial: true)
    }
    guard !prompt.isEmpty else { throw AdmitError.failed(.badRequest("the prompt is empty")) }
    let ctx = configuration.contextLength
    guard prompt.count + 1 <= ctx else {
      throw AdmitError.failed(
        .contextOverflow(
          "the prompt is \(prompt.count) tokens; with room for one generated token it needs \(prompt.count + 1), "
            + "over the context of \(ctx) tokens; shorten it (nothing was truncated)"))
    }
    let maxTokens = job.maxTokens ?? configuration.defaultMaxTokens
    guard maxTokens >= 1 else { throw AdmitError.failed(.badRequest("max_tokens must be at least 1")) }

    var leases: [AdapterLease] = []
    if !job.adapters.isEmpty {
      guard let registry else {
        throw AdmitError.failed(.adapterNotFound("this server has no adapters directory; start it with --adapters DIR"))
      }
      leases = try lease(job, registry: registry)
    }
    let applied = zip(leases, job.adapters).map { AppliedAdapter(name: $0.name, version: $0.version, scale: $1.scale) }
    let (mix, mixKey) = useMix(leases: leases, applied: applied)
    let cache = freeCaches.popLast() ?? context.makeCache(capacity: ctx)
    cache.truncate(to: 0)
    return LiveSequence(
      job: job, request: p.request, received: p.received, receivedNanos: p.receivedNanos, promptText: text,
      prompt: prompt, cache: cache, tokenizer: model.tokenizer, vocabSize: model.model.config.vocabSize, mix: mix,
      mixKey: mixKey, leases: leases, applied: applied, maxTokens: maxTokens)
  }

  /// The shared mix of these exact adapter copies and scales (one LoRA run per mix a step).
  private func useMix(leases: [AdapterLease], applied: [AppliedAdapter]) -> (AdapterMix?, String) {
    guard !leases.isEmpty else { return (nil, "") }
    let key = zip(leases, applied).map { l, a in
      "\(a.name)@\(a.version)*\(a.scale)#\(UInt(bitPattern: ObjectIdentifier(l.adapter).hashValue))"
    }.joined(separator: "+")
    if let m = mixes[key] {
      mixes[key] = (m.mix, m.users + 1)
      return (m.mix, key)
    }
    let mix = AdapterMix(zip(leases, applied).map { AdapterMix.Part(source: $0.adapter, scale: $1.scale) })
    mixes[key] = (mix, 1)
    return (mix, key)
  }

  private func dropMix(_ key: String) {
    guard let m = mixes[key] else { return }
    if m.users <= 1 { mixes[key] = nil } else { mixes[key] = (m.mix, m.users - 1) }
  }

  // MARK: one step

  /// Ends the live sequences a cancel or a closed connection reached.
  func removeCancelled() {
    guard live.contains(where: { $0.cancelled }) else { return }
    for s in live where s.cancelled { finish(s, .cancelled) }
  }

  /// One batched forward: a decode row for every decoding sequence, and whole prompt chunks
  /// for the prefilling ones up to the step's allowance; then sampling for each logit row.
  func step() {
    let t0 = DispatchTime.now().uptimeNanoseconds
    batch.clear()
    logitSequences.removeAll(keepingCapacity: true)
    var allowance = configuration.prefillTokensPerStep
    var prefilled = false
    var promptTokens = 0
    for s in live {
      if s.decoding {
        batch.add(s.pending, position: s.cache.count, cache: s.cache, logits: true, adapters: s.mix)
        logitSequences.append(s)
        continue
      }
      let n = min(configuration.prefillChunk, s.prompt.count - s.fed)
      if prefilled && n > allowance { continue }
      let last = s.fed + n == s.prompt.count
      for j in 0..<n {
        batch.add(
          s.prompt[s.fed + j], position: s.cache.count + j, cache: s.cache, logits: last && j == n - 1,
          adapters: s.mix)
      }
      if last { logitSequences.append(s) }
      s.fed += n
      allowance -= n
      prefilled = true
      promptTokens += n
    }
    context.forward(batch)
    // The arithmetic of every logit row (its log-normaliser, its sampled token) is independent
    // of the others': on the pool, while the bookkeeping below stays on this thread.
    let seqs = logitSequences, ctx = context, picks = self.picks
    let vocab = Int64(model.model.config.vocabSize)
    ctx.pool.parallelFor(seqs.count) { r in
      for i in r {
        let logits = ctx.logits(row: i)
        let lse = lk_logsumexp(logits, vocab)
        let (tok, logit) = seqs[i].sampler.pick(logits)
        picks[i] = (tok, logit - lse)
      }
    }
    var generated = 0
    for (i, s) in seqs.enumerated() {
      if consume(s, token: picks[i].token, logprob: picks[i].logprob) { generated += 1 }
    }
    let finished = live.filter { $0.done }
    for s in finished { finish(s, s.finishReason) }
    let t1 = DispatchTime.now().uptimeNanoseconds
    lock.lock()
    shared.steps += 1
    shared.promptTokens += promptTokens
    shared.generatedTokens += generated
    shared.busySeconds += Double(t1 - t0) / 1e9
    lock.unlock()
  }

  /// Takes `tok`, sampled for `s` (`logprob`: its log-probability before any penalty); returns
  /// whether a token was produced. Marks the sequence done (end of generation, a stop string, or
  /// its limit).
  private func consume(_ s: LiveSequence, token tok: Int32, logprob: Float) -> Bool {
    let now = DispatchTime.now().uptimeNanoseconds
    if s.firstTokenNanos == nil { s.firstTokenNanos = now }
    if model.tokenizer.isEndOfGeneration(tok) {
      s.markDone(.stop)
      return false
    }
    s.tokens.append(tok)
    s.logprobs.append(logprob)
    s.sampler.accept(tok)
    let piece = s.decoder.push(tok)
    if !piece.isEmpty {
      let (emit, stopped) = s.stopper.push(piece)
      s.text += emit
      if !emit.isEmpty && s.job.stream { onEvent(.token(s.job.key, text: emit)) }
      if stopped {
        s.markDone(.stop)
        return true
      }
    }
    if s.tokens.count == s.limit {
      s.markDone(.length)
      return true
    }
    s.pending = tok
    return true
  }

  /// Ends `s`: flushes held-back text (unless cancelled), reports `done`, and gives back its
  /// adapters and cache.
  func finish(_ s: LiveSequence, _ reason: FinishReason) {
    var finish = reason
    if reason != .cancelled {
      let tail = s.stopper.push(s.decoder.flush())
      var rest = tail.emit
      if !tail.stopped { rest += s.stopper.flush() } else { finish = .stop }
      if !rest.isEmpty {
        s.text += rest
        if s.job.stream { onEvent(.token(s.job.key, text: rest)) }
      }
    }
    let record = s.record(finish: finish, now: DispatchTime.now().uptimeNanoseconds)
    for l in s.leases { l.release() }
    dropMix(s.mixKey)
    s.cache.truncate(to: 0)
    freeCaches.append(s.cache)
    live.removeAll { $0 === s }
    // Adapter memory may have come free: the blocked requests try again.
    for p in blocked.reversed() { unpop(p) }
    blocked.removeAll()
    lock.lock()
    left(s.job.key)
    liveCount = live.count
    if finish == .cancelled { shared.cancelled += 1 } else { shared.completed += 1 }
    lock.broadcast()
    lock.unlock()
    onEvent(.done(record))
  }
}
