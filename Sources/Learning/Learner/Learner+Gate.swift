import Adapters
import Foundation
import Model

/// The gate a candidate passes before it becomes current (issue 5): not worse on held-out
/// feedback, general-text perplexity within a bound of the reference's, no degeneration in
/// what it generates (repetition against the reference's samples), and KL to the reference
/// within a bound. Perplexity and sampling use the serving forward (`LlamaContext`, the
/// candidate resident as the registry serves adapters), not the training forward.
extension Learner {
  /// The gate's verdict: `reason` names every failed check, or summarises a pass.
  struct GateReport {
    var passed: Bool
    var reason: String
    var metrics: [String: Double]
  }

  /// `candidateHeldOut` receives the candidate's log π of each held-out example (by its log
  /// sequence number), for the next run's comparison should the candidate become current.
  func gate(
    name: String, anchor: Int, candidate: LoRAParameters, current: LoRAParameters, currentVersion: Int,
    reference: LoRAParameters?, heldOut: [Example], ctx: LoRATrainingContext, prompts: [[Int32]],
    candidateHeldOut: inout [Int64: Double]
  ) throws -> GateReport {
    let g = configuration.gate
    var m: [String: Double] = [:]
    var failures: [String] = []
    var phase = Date()
    func lap(_ key: String) {
      m["t_gate_" + key] = Date().timeIntervalSince(phase)
      phase = Date()
    }

    // 1. Held-out feedback: the candidate's KTO loss (z = 0, β and λ as in training) must not
    // exceed the current version's by more than the tolerance.
    if heldOut.count >= g.minHeldOut {
      let seqs = heldOut.map(\.sequence)
      let ref = try referenceLogProbs(heldOut, reference: reference, ctx: ctx, name: name, anchor: anchor)
      let cand = try ctx.logProbs(seqs, adapter: candidate).map(\.total)
      let cur = try currentHeldOutLogProbs(heldOut, name: name, version: currentVersion, current: current, ctx: ctx)
      candidateHeldOut = Dictionary(zip(heldOut.map(\.seq), cand), uniquingKeysWith: { a, _ in a })
      let kto = ktoLoss(heldOut)
      func loss(_ lp: [Double]) -> Double {
        kto.evaluate(
          heldOut.indices.map {
            KTOExample(logProb: lp[$0], referenceLogProb: ref[$0], desirable: heldOut[$0].desirable)
          }, referencePoint: 0
        ).loss
      }
      func accuracy(_ lp: [Double]) -> Double {
        let right = heldOut.indices.filter { i in
          let r = lp[i] - ref[i]
          return heldOut[i].desirable ? r > 0 : r < 0
        }
        return Double(right.count) / Double(heldOut.count)
      }
      let lc = loss(cand), lu = loss(cur)
      m["held_out_loss"] = lc
      m["held_out_loss_current"] = lu
      m["held_out_accuracy"] = accuracy(cand)
      m["held_out_accuracy_current"] = accuracy(cur)
      // Paired per example: worse only when the rise passes the tolerance with confidence (a
      // one-sided 95% bound over the examples' differences), since a few held-out examples,
      // many of them answers the current version itself gave, make the mean alone noisy.
      let diffs = heldOut.indices.map { i -> Double in
        func one(_ lp: [Double]) -> Double {
          kto.example(
            KTOExample(logProb: lp[i], referenceLogProb: ref[i], desirable: heldOut[i].desirable),
            referencePoint: 0, batchSize: 1
          ).loss
        }
        return one(cand) - one(cur)
      }
      let n = Double(diffs.count)
      let md = diffs.reduce(0, +) / n
      let sd = (diffs.reduce(0) { $0 + ($1 - md) * ($1 - md) } / max(1, n - 1)).squareRoot()
      let lower = md - 1.645 * sd / n.squareRoot()
      m["held_out_loss_rise_lower"] = lower
      if !(lower <= g.heldOutTolerance) {
        failures.append(
          String(
            format: "held-out KTO loss rose from %.4f to %.4f (per example +%.4f, at least +%.4f with 95%% confidence)",
            lu, lc, md, lower))
      }
      lap("held_out")
    }

    // 2. General-text perplexity against the reference's.
    let candWeights = LoRAWeights(name: name, parameters: candidate)
    // Resident as the registry will serve them (Q8_0 factors by default): the gate judges what
    // would be served.
    let type = registry.residentType
    let candMix = AdapterMix(ResidentAdapter(candWeights, layers: model.model.config.layers, type: type))
    let refMix = reference.map {
      AdapterMix(
        ResidentAdapter(LoRAWeights(name: name, parameters: $0), layers: model.model.config.layers, type: type))
    }
    if g.calibrationTokens.count >= g.calibrationContext {
      let key = "\(name)@\(anchor)"
      let pr: Double
      if let cached = referencePerplexity[key] {
        pr = cached
      } else {
        pr = try perplexity(refMix)
        referencePerplexity[key] = pr
      }
      let pc = try perplexity(candMix)
      m["ppl_reference"] = pr
      m["ppl"] = pc
      m["ppl_drift"] = pc / pr - 1
      if !(pc <= pr * (1 + g.maxPerplexityIncrease)) {
        failures.append(
          String(
            format: "perplexity on the calibration text rose %.1f%% (%.3f → %.3f; bound %.0f%%)",
            100 * (pc / pr - 1), pr, pc, 100 * g.maxPerplexityIncrease))
      }
      lap("ppl")
    }

    // 3. Samples on a few prompts, drawn as the daemon serves (its default sampling): repetition
    // and degeneration against the reference's samples, and KL(candidate ‖ reference) per token,
    // exact at each position the candidate's samples visit (the reference reads them alongside).
    if !prompts.isEmpty {
      let cs = try samples(prompts, mix: candMix, klReference: .some(refMix))
      let key = "\(name)@\(anchor)"
      var cache = referenceSamples[key] ?? [:]
      let missing = prompts.filter { cache[$0] == nil }
      let fresh = try samples(prompts, mix: refMix, only: Set(missing))
      for s in fresh { cache[s.prompt] = s }
      referenceSamples[key] = cache
      let rs = prompts.compactMap { cache[$0] }
      lap("samples")
      let uc = mean(cs.map { Repetition.uniqueWordShare($0.text) })
      let ur = mean(rs.map { Repetition.uniqueWordShare($0.text) })
      let cc = mean(cs.map { Repetition.compressionRatio($0.text) })
      let cr = mean(rs.map { Repetition.compressionRatio($0.text) })
      m["unique_words"] = uc
      m["unique_words_reference"] = ur
      m["compression"] = cc
      m["compression_reference"] = cr
      if !(uc >= ur * (1 - g.maxRepetitionDrop)) {
        failures.append(String(format: "samples repeat themselves: unique-word share %.2f vs %.2f", uc, ur))
      }
      if !(cc >= cr * (1 - g.maxRepetitionDrop)) {
        failures.append(String(format: "samples repeat themselves: compression ratio %.2f vs %.2f", cc, cr))
      }
      // Degenerate samples (the loops and repeated phrases a reader would thumb down).
      let dc = Double(cs.filter { Degeneracy($0.text).isDegenerate }.count) / Double(max(1, cs.count))
      let dr = Double(rs.filter { Degeneracy($0.text).isDegenerate }.count) / Double(max(1, rs.count))
      m["degenerate"] = dc
      m["degenerate_reference"] = dr
      if !(dc <= dr + g.maxDegenerateIncrease) {
        failures.append(
          String(
            format: "%.0f%% of its samples are degenerate (reference %.0f%%, bound +%.0f points)", 100 * dc, 100 * dr,
            100 * g.maxDegenerateIncrease))
      }
      let klTokens = cs.reduce(0) { $0 + $1.klPositions }
      if klTokens > 0 {
        let kl = cs.reduce(0) { $0 + $1.klSum } / Double(klTokens)
        m["kl_per_token"] = kl
        if !(kl <= g.maxKLPerToken) {
          failures.append(
            String(format: "KL to the reference is %.3f nats per token (bound %.2f)", kl, g.maxKLPerToken))
        }
      }
    }
    if failures.isEmpty {
      let parts = ["held_out_loss", "ppl_drift", "kl_per_token"].compactMap { k in
        m[k].map { String(format: "%@ %.4f", k, $0) }
      }
      return GateReport(passed: true, reason: "passed the gate: " + parts.joined(separator: ", "), metrics: m)
    }
    return GateReport(passed: false, reason: failures.joined(separator: "; "), metrics: m)
  }

  /// log π of the held-out examples under the current version: the ones its own gate computed
  /// (when it was the candidate) from the cache, the rest now.
  func currentHeldOutLogProbs(
    _ heldOut: [Example], name: String, version: Int, current: LoRAParameters, ctx: LoRATrainingContext
  ) throws -> [Double] {
    let cached = heldOutLogProbs["\(name)@\(version)"] ?? [:]
    var out = heldOut.map { cached[$0.seq] }
    let missing = out.indices.filter { out[$0] == nil }
    if !missing.isEmpty {
      let lp = try ctx.logProbs(missing.map { heldOut[$0].sequence }, adapter: current)
      for (j, i) in missing.enumerated() { out[i] = lp[j].total }
    }
    return out.map { $0! }
  }

  func mean(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count) }

  /// The serving context of the gate, made on first use (on the learner thread, so its pool
  /// runs at the learner's niceness).
  func gateContext() -> LlamaContext {
    if let s = servingContext { return s }
    let s = LlamaContext(model: model.model, threads: configuration.threads, maxBatch: 128, maxContext: 512)
    servingContext = s
    return s
  }

  func perplexity(_ mix: AdapterMix?) throws -> Double {
    let g = configuration.gate
    let ctx = min(g.calibrationContext, 512)
    return try Perplexity.run(
      context: gateContext(), tokens: g.calibrationTokens, ctx: ctx,
      bos: model.addsBOS ? model.tokenizer.bosID : nil, adapters: mix
    ).ppl
  }

  struct Sample {
    var prompt: [Int32]
    var tokens: [Int32]
    var text: String
    /// Σ over the positions sampled of KL(candidate ‖ reference) of the next-token
    /// distributions (temperature 1, untruncated), and the number of those positions.
    var klSum: Double = 0
    var klPositions = 0
  }

  /// One sample per prompt with the daemon's default sampling (temperature 0.8, top-k 40,
  /// top-p 0.95, min-p 0.05: what users see, and where loops show) from a seed fixed by the
  /// prompt's tokens (so the candidate and the reference, cached from an earlier run, draw with
  /// the same seed). All prompts decode together, one batched forward per token (each prompt's
  /// prefill first, in chunks); `only`: sample just these. With `klReference` (.some(nil): the
  /// base), a second sequence per prompt reads the same tokens through that reference in the
  /// same forward, and each position adds the exact KL between the two next-token distributions.
  func samples(
    _ prompts: [[Int32]], mix: AdapterMix?, only: Set<[Int32]>? = nil, klReference: AdapterMix?? = nil
  ) throws -> [Sample] {
    let g = configuration.gate
    let context = gateContext()
    let chosen = prompts.filter { p in
      !p.isEmpty && p.count + g.sampleTokens + 2 <= 512 && only?.contains(p) != false
    }
    guard !chosen.isEmpty else { return [] }
    let kl = klReference != nil
    let refMix = klReference ?? nil
    let vocab = context.config.vocabSize
    // Each cache holds just its prompt and sample (24 caches of the full 512 would be ~0.5 GB).
    let caches = chosen.map { context.makeCache(capacity: $0.count + g.sampleTokens + 1) }
    let refCaches = kl ? chosen.map { context.makeCache(capacity: $0.count + g.sampleTokens + 1) } : []
    let samplers = chosen.map { p -> Sampler in
      var o = SamplingOptions()
      o.seed = g.sampleSeed &+ Self.stableHash(p)
      let s = Sampler(vocabSize: vocab, options: o)
      for t in p { s.accept(t) }
      return s
    }
    let batch = Batch(capacity: context.maxBatch)
    var out = chosen.map { _ in [Int32]() }
    var klSum = [Double](repeating: 0, count: chosen.count)
    var klPositions = [Int](repeating: 0, count: chosen.count)
    var live: [Int] = []
    var next: [Int32] = []
    /// Adds a row of sequence i through the candidate, or through the reference (its twin
    /// cache), at `position` (nil: the next one of that cache).
    func add(_ i: Int, _ token: Int32, position: Int? = nil, logits: Bool, reference: Bool) {
      let cache = reference ? refCaches[i] : caches[i]
      batch.add(
        token, position: position ?? cache.count, cache: cache, logits: logits, adapters: reference ? refMix : mix)
    }
    /// Samples sequence i's next token from `logits` (after adding the KL against `ref`).
    func take(_ i: Int, _ logits: UnsafeMutablePointer<Float>, ref: UnsafeMutablePointer<Float>?) -> Int32? {
      if let ref {
        klSum[i] += Self.kl(logits, ref, count: vocab)
        klPositions[i] += 1
      }
      let t = samplers[i].sample(logits)
      if model.tokenizer.isEndOfGeneration(t) { return nil }
      out[i].append(t)
      samplers[i].accept(t)
      return out[i].count < g.sampleTokens ? t : nil
    }
    for (i, p) in chosen.enumerated() {
      try checkStopping()
      // The prompt through the candidate and (for the KL) through the reference, side by side.
      var j = 0
      while j < p.count {
        batch.clear()
        let end = min(p.count, j + context.maxBatch / 2)
        for k in j..<end { add(i, p[k], position: k, logits: k == p.count - 1, reference: false) }
        if kl { for k in j..<end { add(i, p[k], position: k, logits: k == p.count - 1, reference: true) } }
        context.forward(batch)
        j = end
      }
      if let t = take(i, context.logits(row: 0), ref: kl ? context.logits(row: 1) : nil) {
        live.append(i)
        next.append(t)
      }
    }
    while !live.isEmpty {
      try checkStopping()
      batch.clear()
      for (k, i) in live.enumerated() { add(i, next[k], logits: true, reference: false) }
      if kl {
        for (k, i) in live.enumerated() { add(i, next[k], logits: true, reference: true) }
      }
      context.forward(batch)
      var stillLive: [Int] = [], stillNext: [Int32] = []
      for (k, i) in live.enumerated() {
        if let t = take(i, context.logits(row: k), ref: kl ? context.logits(row: live.count + k) : nil) {
          stillLive.append(i)
          stillNext.append(t)
        }
      }
      live = stillLive
      next = stillNext
    }
    return chosen.indices.map { i in
      Sample(
        prompt: chosen[i], tokens: out[i], text: model.tokenizer.decode(out[i]), klSum: klSum[i],
        klPositions: klPositions[i])
    }
  }

  /// KL(p ‖ q) of the softmaxes of two logit rows, in nats.
  static func kl(_ p: UnsafePointer<Float>, _ q: UnsafePointer<Float>, count n: Int) -> Double {
    var mp = -Float.infinity, mq = -Float.infinity
    for i in 0..<n {
      mp = max(mp, p[i])
      mq = max(mq, q[i])
    }
    var sp: Double = 0, sq: Double = 0
    for i in 0..<n {
      sp += Double(expf(p[i] - mp))
      sq += Double(expf(q[i] - mq))
    }
    let lp = Double(mp) + Foundation.log(sp), lq = Double(mq) + Foundation.log(sq)
    var kl: Double = 0
    for i in 0..<n {
      let a = Double(p[i]) - lp
      kl += exp(a) * (a - (Double(q[i]) - lq))
    }
    return max(0, kl)
  }

  /// FNV-1a of the tokens: the same in every process (Swift's Hasher is seeded per process).
  static func stableHash(_ tokens: [Int32]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for t in tokens {
      h = (h ^ UInt64(UInt32(bitPattern: t))) &* 0x100_0000_01b3
    }
    return h
  }
}
