import Adapters
import Foundation
import Model

/// One learning run: snapshot, train, gate, publish, record.
extension Learner {
  /// One rated completion in training form.
  struct Example {
    var sequence: TrainingSequence
    var desirable: Bool
    /// log π_ref(y|x), when the log's serving log-probabilities are the reference's.
    var loggedReference: Double?
    var seq: Int64
  }

  /// Trains `name` once on its new feedback and returns the recorded run. Learner thread only.
  func run(adapter name: String) throws -> LearnerRun {
    let c = configuration
    let t0 = Date()
    _ = registry.rescan()
    guard let summary = registry.list().first(where: { $0.name == name }) else {
      throw LearnerError.unknownAdapter(name)
    }
    guard summary.learnable else { throw LearnerError.notLearnable(name) }
    guard let current = summary.current else {
      throw LearnerError.failed("'\(name)' has no readable current version: \(summary.problem ?? "?")")
    }
    let anchor = AdapterHistory.anchor(registry: registry, name: name, version: current)

    // The snapshot: new training examples, replayed earlier ones, and the held-out slice.
    let mark = try log.consumedMark(adapter: name)
    let all = try log.feedbackExamples(adapter: name).filter { !$0.completionTokens.isEmpty }
    let latest = max(mark, all.map(\.seq).max() ?? mark)
    let held = all.filter { $0.isHeldOut(fraction: c.heldOutFraction) }
    let train = all.filter { !$0.isHeldOut(fraction: c.heldOutFraction) }
    let fresh = train.filter { $0.seq > mark }
    func finish(_ outcome: LearnerRun.Outcome, _ reason: String, to: Int? = nil, metrics: [String: Double] = [:])
      throws -> LearnerRun
    {
      try log.setConsumedMark(adapter: name, seq: latest)
      var m = metrics
      m["seconds"] = Date().timeIntervalSince(t0)
      return try log.recordLearnerRun(
        LearnerRun(
          adapter: name, fromVersion: current, toVersion: to, outcome: outcome, reason: reason,
          metrics: Self.json(m)))
    }
    if fresh.isEmpty {
      return try finish(.nothing, "no new training feedback (\(all.count) rated, \(held.count) held out)")
    }
    let replay = Self.replay(earlier: train.filter { $0.seq <= mark }, fresh: fresh, count: c.replay, loss: c.loss)
    let batch = (fresh + replay).map(example)
    let heldOut = held.suffix(32).map(example)

    // Parameters: the current version, and the anchor as the reference (nil: the base itself).
    let curWeights = try LoRALoader.load(
      path: registry.versionDirectory(name: name, version: current), config: model.model.config, name: name)
    var params = try LoRAParameters(curWeights, config: model.model.config)
    let currentParams = params
    var reference: LoRAParameters? = params
    if anchor != current {
      let w = try LoRALoader.load(
        path: registry.versionDirectory(name: name, version: anchor), config: model.model.config, name: name)
      reference = try LoRAParameters(w, config: model.model.config)
    }
    if let r = reference, Self.isZeroDelta(r) { reference = nil }
    let ctx = trainingContext(for: params.layout)

    // Reference log-probabilities: the logged serving ones when the anchor served them.
    var metrics: [String: Double] = [:]
    var phase = Date()
    func lap(_ key: String) {
      metrics["t_" + key] = Date().timeIntervalSince(phase)
      phase = Date()
    }
    let refLogProbs = try referenceLogProbs(batch, reference: reference, ctx: ctx, name: name, anchor: anchor)
    var settings = AdamW.Settings(
      learningRate: c.learningRate, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm)
    settings.beta2 = 0.999
    let optPath = registry.versionDirectory(name: name, version: current) + "/" + Self.optimizerFile
    var opt =
      (try? AdamW(contentsOf: optPath, layout: params.layout)) ?? AdamW(layout: params.layout, settings: settings)
    opt.settings = settings

    metrics = [
      "examples": Double(batch.count), "fresh": Double(fresh.count), "replay": Double(replay.count),
      "up": Double(batch.filter(\.desirable).count), "down": Double(batch.filter { !$0.desirable }.count),
      "held_out": Double(heldOut.count),
    ]
    // KTO's z_ref pairs (prompt i with completion i + 1), their reference log-probabilities once.
    let mismatched = c.loss == .kto ? mismatchedSequences(batch, ctx: ctx) : []
    let mismatchedRef = try ctx.logProbs(mismatched, adapter: reference).map(\.total)
    lap("reference")
    var trained = false
    for step in 0..<c.stepsPerRun {
      try checkStopping()
      var z: Double = 0
      if !mismatched.isEmpty {
        let pol = try ctx.logProbs(mismatched, adapter: params).map(\.total)
        z = KTOLoss.referencePoint(policy: pol, reference: mismatchedRef)
      }
      var grads = LoRAGradients(layout: params.layout)
      let loss: Double
      if c.loss == .kto {
        // One forward: each sequence's weight dLoss/dlog π from its own log π, computed by the
        // forward its backward then uses (z is known first, from the mismatched pairs).
        let kto = ktoLoss(batch)
        var total: Double = 0
        try ctx.accumulateGradient(batch.map(\.sequence), adapter: params, into: &grads) { i, lp in
          let t = kto.example(
            KTOExample(logProb: lp.total, referenceLogProb: refLogProbs[i], desirable: batch[i].desirable),
            referencePoint: z, batchSize: batch.count)
          total += t.loss
          return Float(t.weight)
        }
        loss = total
      } else {
        let policy = try ctx.logProbs(batch.map(\.sequence), adapter: params).map(\.total)
        guard let (l, weights) = lossWeights(batch, policy: policy, reference: refLogProbs) else { break }
        var seqs = batch.map(\.sequence)
        for i in seqs.indices { seqs[i].weight = Float(weights[i]) }
        try ctx.accumulateGradient(seqs.filter { $0.weight != 0 }, adapter: params, into: &grads)
        loss = l
      }
      metrics["loss_\(step)"] = loss
      if step == 0 { metrics["z_ref"] = z }
      let norm = try opt.update(&params, gradients: &grads)
      metrics["grad_norm_\(step)"] = norm
      trained = true
    }
    lap("train")
    guard trained else {
      return try finish(.nothing, "no training signal: --loss \(c.loss.rawValue) found no usable pairs in the batch")
    }
    guard params.values.allSatisfy(\.isFinite) else {
      return try finish(.rejected, "the update produced NaN or infinite weights", metrics: metrics)
    }

    // The gate, then the version on disk either way.
    try checkStopping()
    var candidateHeldOut: [Int64: Double] = [:]
    let report = try gate(
      name: name, anchor: anchor, candidate: params, current: currentParams, currentVersion: current,
      reference: reference, heldOut: heldOut, ctx: ctx, prompts: gatePrompts(held: held, train: train),
      candidateHeldOut: &candidateHeldOut)
    for (k, v) in report.metrics { metrics[k] = v }
    lap("gate")
    let weights = LoRAWeights(name: name, parameters: params)
    let record = VersionRecord(
      version: 0, parent: current, anchor: anchor, created: ISO8601DateFormatter().string(from: Date()),
      outcome: report.passed ? "promoted" : "rejected", reason: report.reason, loss: c.loss.rawValue,
      metrics: metrics)
    let n = try writeVersion(name: name, weights: weights, optimizer: opt, record: record, passed: report.passed)
    if report.passed {
      heldOutLogProbs = heldOutLogProbs.filter { !$0.key.hasPrefix(name + "@") }
      heldOutLogProbs["\(name)@\(n)"] = candidateHeldOut
    }
    return try finish(report.passed ? .promoted : .rejected, report.reason, to: n, metrics: metrics)
  }

  static let optimizerFile = "optimizer.bin"

  /// Writes the candidate (with its optimizer state, its record and, when it failed, the
  /// `rejected` marker) as the next version; current only when it passed.
  func writeVersion(
    name: String, weights: LoRAWeights, optimizer: AdamW, record: VersionRecord, passed: Bool
  ) throws -> Int {
    let tmp = NSTemporaryDirectory() + "/lorad-adamw-\(getpid())-\(UUID().uuidString)"
    try optimizer.write(to: tmp)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    guard let optBytes = FileManager.default.contents(atPath: tmp) else {
      throw LearnerError.failed("cannot read back the optimizer state written to \(tmp)")
    }
    var files: [String: [UInt8]] = [Self.optimizerFile: Array(optBytes)]
    var rec = record
    // The number is the registry's to choose; the record names it as "the next one".
    rec.version = (registry.list().first { $0.name == name }?.versions.last ?? 0) + 1
    files[VersionRecord.fileName] = rec.encoded()
    if !passed { files[AdapterRegistry.rejectedMarker] = Array((record.reason + "\n").utf8) }
    return try registry.writeVersion(name: name, weights: weights, files: files, makeCurrent: passed)
  }

  /// A rated generation as a training sequence (the prompt cut from the left and the completion
  /// from the right to fit `maxSequenceTokens`; the end-of-generation token appended when the
  /// model ended it, since that ending is part of what was rated).
  func example(_ e: FeedbackExample) -> Example {
    let limit = max(8, configuration.maxSequenceTokens)
    var completion = e.completionTokens
    var logged: [Float]? = e.logprobs.count == completion.count ? e.logprobs : nil
    if e.finish == .stop, let eos = model.tokenizer.eosID, completion.last != eos {
      completion.append(eos)
      logged = nil  // the log has no log-probability for the end token
    }
    let maxCompletion = limit - min(e.promptTokens.count, limit / 2)
    if completion.count > maxCompletion {
      completion = Array(completion.prefix(maxCompletion))
      logged = logged.map { Array($0.prefix(maxCompletion)) }
    }
    let prompt = Array(e.promptTokens.suffix(max(1, limit - completion.count)))
    return Example(
      sequence: TrainingSequence(tokens: prompt + completion, promptLength: prompt.count),
      desirable: e.label, loggedReference: logged.map { $0.reduce(0) { $0 + Double($1) } },
      seq: e.seq)
  }

  /// Earlier examples to mix in: the class the new feedback lacks most first, newest first.
  /// For DPO, earlier examples on the same prompts as new ones come first (they make pairs).
  static func replay(earlier: [FeedbackExample], fresh: [FeedbackExample], count: Int, loss: LossKind)
    -> [FeedbackExample]
  {
    guard count > 0, !earlier.isEmpty else { return [] }
    var picked: [FeedbackExample] = []
    var taken = Set<Int64>()
    func take(_ e: FeedbackExample) {
      if picked.count < count && taken.insert(e.seq).inserted { picked.append(e) }
    }
    let newest = earlier.reversed()
    if loss == .dpo {
      let prompts = Set(fresh.map(\.promptTokens))
      newest.filter { prompts.contains($0.promptTokens) }.forEach(take)
    }
    let ups = fresh.filter(\.label).count, downs = fresh.count - ups
    let minority = ups <= downs
    newest.filter { $0.label == minority }.forEach(take)
    newest.forEach(take)
    return picked
  }

  /// True when every B factor is zero: the adapter adds nothing, it is the base.
  static func isZeroDelta(_ p: LoRAParameters) -> Bool {
    p.layout.slots.allSatisfy { s in p.values[s.b..<(s.b + s.rows * s.rank)].allSatisfy { $0 == 0 } }
  }

  /// The training context, reused while it fits the layout and the sequence bounds.
  func trainingContext(for layout: LoRALayout) -> LoRATrainingContext {
    let c = configuration
    let need = Set(layout.slots.map(\.module))
    if let t = trainer, t.rank >= layout.maxRank, need.isSubset(of: Set(t.modules)),
      t.maxSequence >= c.maxSequenceTokens - 1
    {
      return t
    }
    trainer = nil
    let t = LoRATrainingContext(
      model: model.model, rank: max(8, layout.maxRank), targets: LoRAModule.allCases,
      maxTokens: max(c.passTokens, c.maxSequenceTokens), maxSequence: c.maxSequenceTokens - 1, threads: c.threads)
    trainer = t
    return t
  }

  /// log π_ref of each example: logged when the anchor served it, else computed once per
  /// anchor and kept (the reference never changes for an anchor).
  func referenceLogProbs(
    _ batch: [Example], reference: LoRAParameters?, ctx: LoRATrainingContext, name: String, anchor: Int
  ) throws -> [Double] {
    let key = "\(name)@\(anchor)"
    var cache = referenceLogProbCache[key] ?? [:]
    var out = batch.map { $0.loggedReference ?? cache[$0.seq] }
    let missing = out.indices.filter { out[$0] == nil }
    if !missing.isEmpty {
      let lp = try ctx.logProbs(missing.map { batch[$0].sequence }, adapter: reference)
      for (j, i) in missing.enumerated() {
        out[i] = lp[j].total
        cache[batch[i].seq] = lp[j].total
      }
      referenceLogProbCache = referenceLogProbCache.filter { !$0.key.hasPrefix(name + "@") }
      referenceLogProbCache[key] = cache
    }
    return out.map { $0! }
  }

  /// KTO with λ_D / λ_U balanced from the examples' up and down counts.
  func ktoLoss(_ examples: [Example]) -> KTOLoss {
    let ups = examples.filter(\.desirable).count
    return KTOLoss.balanced(beta: configuration.beta, desirableCount: ups, undesirableCount: examples.count - ups)
  }

  /// The loss of DPO or REINFORCE on the batch, whose weights need every sequence's log π
  /// first: its value and each sequence's weight dLoss/dlog π. nil when the batch gives no
  /// signal. (KTO takes each weight from the sequence's own forward in `run`.)
  func lossWeights(_ batch: [Example], policy: [Double], reference: [Double]) -> (Double, [Double])? {
    let c = configuration
    switch c.loss {
    case .kto:
      return nil
    case .dpo:
      let pairs = DPOLoss.pairs(
        keys: batch.map { Array($0.sequence.tokens.prefix($0.sequence.promptLength)) },
        desirable: batch.map(\.desirable))
      guard !pairs.isEmpty else { return nil }
      let (loss, weights, _) = DPOLoss(beta: c.beta).evaluate(policy: policy, reference: reference, pairs: pairs)
      return (loss, weights)
    case .reinforce:
      guard batch.count >= 2 else { return nil }
      let (loss, weights, _) = ReinforceLoss(beta: c.beta).evaluate(
        policy: policy, reference: reference, desirable: batch.map(\.desirable))
      return (loss, weights)
    }
  }

  /// KTO's mismatched pairs for z_ref: prompt i with the completion of i + 1, over up to 8
  /// examples (none for fewer than 2), cut to the context's sequence bound.
  func mismatchedSequences(_ batch: [Example], ctx: LoRATrainingContext) -> [TrainingSequence] {
    let n = min(batch.count, 8)
    guard n >= 2 else { return [] }
    let limit = ctx.maxSequence + 1
    return KTOLoss.mismatchedPairs(count: n).map { p -> TrainingSequence in
      let x = batch[p.prompt].sequence, y = batch[p.completion].sequence
      let prompt = Array(x.tokens.prefix(x.promptLength))
      let completion = Array(y.tokens.suffix(y.completionLength).prefix(max(1, limit - min(prompt.count, limit / 2))))
      let pr = Array(prompt.suffix(max(1, limit - completion.count)))
      return TrainingSequence(tokens: pr + completion, promptLength: pr.count)
    }
  }

  /// Prompts to sample in the gate: held-out ones first, then training ones, distinct.
  func gatePrompts(held: [FeedbackExample], train: [FeedbackExample]) -> [[Int32]] {
    var seen = Set<[Int32]>()
    var out: [[Int32]] = []
    for e in held.reversed() + train.reversed() where seen.insert(e.promptTokens).inserted {
      out.append(e.promptTokens)
      if out.count == configuration.gate.samplePrompts { break }
    }
    return out
  }

  static func json(_ m: [String: Double]) -> String {
    let parts = m.keys.sorted().map { k -> String in
      let v = m[k]!
      return "\"\(k)\":" + (v.isFinite ? "\(v)" : "null")
    }
    return "{" + parts.joined(separator: ",") + "}"
  }
}
