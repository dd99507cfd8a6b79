import Adapters
import Foundation
import Model
import TestSupport
import Testing

@testable import Learning

/// The learner end to end on the tiny model: a run promotes a version that likes what users
/// liked; a harmful update (learning rate ×1000) is rejected and the current version stays;
/// versions carry their optimizer state and record; history and rollback.
@Suite(.serialized) struct LearnerTests {
  /// A tiny model, a registry with a fresh learnable adapter "a", and a log with rated
  /// generations of it: completions of 'A' bytes liked, of 'B' bytes disliked.
  final class Setup {
    let model: LoadedModel
    let registry: AdapterRegistry
    let log: FeedbackLog
    let state: String

    init(examples: Int = 48, rank: Int = 4) throws {
      let path = TinyModel.temporaryPath("learner.gguf")
      try TinyModel.write(to: path, shape: TinyModel.Shape(), seed: 11)
      model = try LoadedModel(path: path)
      registry = try AdapterRegistry(
        directory: TinyModel.temporaryPath("adapters"), config: model.model.config, memoryBudget: 64 << 20)
      try registry.create(name: "a", rank: rank, alpha: Float(2 * rank), targets: LoRAModule.allCases, seed: 3)
      state = TinyModel.temporaryPath("state")
      log = try FeedbackLog(stateDirectory: state)
      try rate(0..<examples)
    }

    /// Rated generations `range` of adapter "a" at `version`, logged with the base's
    /// log-probabilities (what version 0, B = 0, served).
    func rate(_ range: Range<Int>, version: Int = 0) throws {
      let ctx = LoRATrainingContext(model: model.model, rank: 8, maxTokens: 128, threads: 2)
      for i in range {
        let liked = i % 2 == 0
        let prompt = Array("Question \(i % 7)?".utf8).map { Int32($0) }
        let byte: Int32 = liked ? 65 : 66
        let completion = [Int32](repeating: byte, count: 6) + [32, byte, byte]
        try log.record(
          GenerationRecord(
            request: "r\(i)", time: Date(), who: nil, adapter: "a", version: version,
            prompt: "Question \(i % 7)?", promptTokens: prompt, completion: "", completionTokens: completion,
            logprobs: try ctx.tokenLogProbs(tokens: prompt + completion, promptLength: prompt.count, adapter: nil),
            sampling: .init(temperature: 1, topP: 1, topK: 0, seed: 1, maxTokens: 8, stop: []),
            finish: .length))
        try log.recordFeedback(request: "r\(i)", rating: liked ? .up : .down, note: nil, who: nil)
      }
    }

    func configuration(lr: Float = 1e-3) -> LearnerConfiguration {
      var c = LearnerConfiguration()
      c.learningRate = lr
      c.stepsPerRun = 2
      c.threads = 2
      c.automatic = false
      c.maxSequenceTokens = 64
      c.passTokens = 256
      c.gate.calibrationTokens = model.tokenizer.encode(String(CalibrationText.gplPreamble.prefix(600)))
      c.gate.calibrationContext = 64
      c.gate.sampleTokens = 16
      return c
    }

    /// log π(liked) − log π(disliked) of held-out-like probes under version `v`.
    func preference(_ v: Int) throws -> Double {
      let w = try LoRALoader.load(
        path: registry.versionDirectory(name: "a", version: v), config: model.model.config, name: "a")
      let p = try LoRAParameters(w, config: model.model.config)
      let ctx = LoRATrainingContext(model: model.model, rank: 8, maxTokens: 128, threads: 2)
      let prompt = Array("Question 9?".utf8).map { Int32($0) }
      let up = try ctx.logProb(tokens: prompt + [65, 65, 65, 65], promptLength: prompt.count, adapter: p)
      let down = try ctx.logProb(tokens: prompt + [66, 66, 66, 66], promptLength: prompt.count, adapter: p)
      return up - down
    }
  }

  @Test func runPromotesAVersionThatLikesWhatUsersLiked() throws {
    let s = try Setup()
    let learner = Learner(model: s.model, registry: s.registry, log: s.log, configuration: s.configuration())
    defer { learner.stop() }
    let before = try s.preference(0)
    let run = try learner.learn(adapter: "a")
    #expect(run.outcome == .promoted, "\(run.reason) \(run.metrics)")
    #expect(run.toVersion == 1 && run.fromVersion == 0)
    #expect(try s.registry.resolve("a").version == 1)
    let after = try s.preference(1)
    #expect(after > before + 0.5, "log π(liked) − log π(disliked): \(before) → \(after)")
    // The version carries its optimizer state and its record, and the run is in the log.
    let dir = s.registry.versionDirectory(name: "a", version: 1)
    let rec = try #require(VersionRecord.read(directory: dir))
    #expect(rec.parent == 0 && rec.anchor == 0 && rec.outcome == "promoted")
    let w = try LoRALoader.load(path: dir, config: s.model.model.config)
    let opt = try AdamW(
      contentsOf: dir + "/optimizer.bin", layout: try LoRAParameters(w, config: s.model.model.config).layout)
    #expect(opt.step == 2)
    #expect(try s.log.learnerRuns(adapter: "a").first?.outcome == .promoted)
    // Nothing new: nothing to learn, and the mark holds.
    let again = try learner.learn(adapter: "a")
    #expect(again.outcome == .nothing)
    // More feedback: version 2, still anchored at 0, resuming the optimizer.
    try s.rate(48..<64, version: 1)
    let next = try learner.learn(adapter: "a")
    #expect(next.outcome == .promoted, "\(next.reason) \(next.metrics)")
    let rec2 = try #require(VersionRecord.read(directory: s.registry.versionDirectory(name: "a", version: 2)))
    #expect(rec2.parent == 1 && rec2.anchor == 0)
    // History and rollback (default: the parent).
    let h = try AdapterHistory.list(registry: s.registry, name: "a")
    #expect(h.map(\.version) == [0, 1, 2] && h.last!.isCurrent && h.first!.isAnchor)
    #expect(try AdapterHistory.rollback(registry: s.registry, name: "a") == 1)
    #expect(try s.registry.resolve("a").version == 1)
  }

  @Test func harmfulUpdateIsRejectedAndCurrentStays() throws {
    let s = try Setup()
    let learner = Learner(model: s.model, registry: s.registry, log: s.log, configuration: s.configuration(lr: 5))
    defer { learner.stop() }
    let run = try learner.learn(adapter: "a")
    #expect(run.outcome == .rejected, "\(run.reason) \(run.metrics)")
    #expect(try s.registry.resolve("a").version == 0)
    let n = try #require(run.toVersion)
    #expect(s.registry.rejection(name: "a", version: n) != nil)
    #expect(VersionRecord.read(directory: s.registry.versionDirectory(name: "a", version: n))?.outcome == "rejected")
    #expect(throws: RegistryError.self) { try s.registry.setCurrent(name: "a", version: n) }
    print("rejected: \(run.reason)")
  }

  /// stop() during a long run ends it at its next step: the waiting request hears `stopped`,
  /// nothing is published, and stop() returns long before the run would have finished.
  @Test func stopEndsARunInProgressWithoutPublishing() throws {
    let s = try Setup()
    var c = s.configuration()
    c.stepsPerRun = 10_000  // minutes of training if nothing stopped it
    let learner = Learner(model: s.model, registry: s.registry, log: s.log, configuration: c)
    let done = DispatchSemaphore(value: 0)
    let outcome = ResultBox()
    learner.submit(adapter: "a") { r in
      outcome.set(r)
      done.signal()
    }
    var waited = 0
    while !learner.isTraining && waited < 500 {
      usleep(10_000)
      waited += 1
    }
    #expect(learner.isTraining)
    usleep(200_000)  // into the training steps
    let t0 = Date()
    learner.stop()
    #expect(Date().timeIntervalSince(t0) < 10, "stop() waited \(Date().timeIntervalSince(t0)) s")
    #expect(done.wait(timeout: .now() + 5) == .success)
    #expect(throws: LearnerError.self) { try outcome.get() }
    #expect(try s.registry.resolve("a").version == 0)
    #expect(!FileManager.default.fileExists(atPath: s.registry.versionDirectory(name: "a", version: 1)))
  }

  /// The gate decodes its samples in one batch: each equals that prompt sampled alone by the
  /// one-sequence Generator with the same seed (products are batch-invariant), including
  /// prompts that end early and prompts longer than one prefill chunk.
  @Test func gateSamplesInOneBatchEqualSamplingEachAlone() throws {
    let s = try Setup(examples: 0)
    var c = s.configuration()
    c.gate.sampleTokens = 24
    let learner = Learner(model: s.model, registry: s.registry, log: s.log, configuration: c)
    defer { learner.stop() }
    let w = LoRAWeights.random(name: "r", config: s.model.model.config, rank: 4, alpha: 8, bScale: 0.05, seed: 5)
    let mix = AdapterMix(ResidentAdapter(w, layers: s.model.model.config.layers, type: s.registry.residentType))
    let prompts: [[Int32]] = [
      Array("Question 1?".utf8).map { Int32($0) }, Array("Hi".utf8).map { Int32($0) },
      (0..<150).map { Int32(32 + $0 % 90) }, Array("A longer question, with commas?".utf8).map { Int32($0) },
    ]
    for m in [nil, mix] {
      let batched = try learner.samples(prompts, mix: m)
      #expect(batched.map(\.prompt) == prompts)
      let gen = Generator(context: learner.gateContext(), tokenizer: s.model.tokenizer, cacheCapacity: 512)
      for (p, b) in zip(prompts, batched) {
        var o = SamplingOptions()  // the daemon's defaults
        o.seed = c.gate.sampleSeed &+ Learner.stableHash(p)
        let alone = try gen.generate(prompt: p, maxTokens: c.gate.sampleTokens, sampling: o, adapters: m)
        #expect(b.tokens == alone.tokens, "prompt of \(p.count) tokens, adapter \(m != nil)")
      }
    }
    // Only the asked-for prompts are sampled.
    #expect(try learner.samples(prompts, mix: nil, only: [prompts[1]]).map(\.prompt) == [prompts[1]])

    // KL against a reference read alongside: the same tokens as without it, 0 against itself,
    // and against the base the sum over positions of the KL computed from each model's logits
    // of the whole sequence fed at once (an independent path: one prefill per model).
    let withKL = try learner.samples(prompts, mix: mix, klReference: .some(nil))
    #expect(withKL.map(\.tokens) == (try learner.samples(prompts, mix: mix)).map(\.tokens))
    let selfKL = try learner.samples(prompts, mix: mix, klReference: .some(mix))
    #expect(selfKL.allSatisfy { $0.klSum < 1e-6 && $0.klPositions > 0 })
    let vocab = s.model.model.config.vocabSize
    var compared = 0
    for smp in withKL where !smp.tokens.isEmpty {
      let seq = smp.prompt + smp.tokens
      func rows(_ m: AdapterMix?) -> [[Float]] {
        let g = Generator(context: learner.gateContext(), tokenizer: s.model.tokenizer, cacheCapacity: 512)
        g.prefill(seq, allLogits: true, adapters: m)
        return (0..<seq.count).map {
          Array(UnsafeBufferPointer(start: learner.gateContext().logits(row: $0), count: vocab))
        }
      }
      // (The context's logits rows of the last chunk only: the sequences here fit one chunk.)
      guard seq.count <= learner.gateContext().maxBatch else { continue }
      let c = rows(mix), r = rows(nil)
      var expected: Double = 0
      for pos in (smp.prompt.count - 1)..<min(seq.count, smp.prompt.count - 1 + smp.klPositions) {
        func logSoftmax(_ x: [Float]) -> [Double] {
          let m = Double(x.max()!)
          let l = m + log(x.reduce(0) { $0 + exp(Double($1) - m) })
          return x.map { Double($0) - l }
        }
        let a = logSoftmax(c[pos]), b = logSoftmax(r[pos])
        expected += zip(a, b).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) }
      }
      #expect(smp.klSum > 0)
      #expect(abs(smp.klSum - expected) <= 1e-3 * max(1, expected), "\(smp.klSum) vs \(expected)")
      compared += 1
    }
    #expect(compared >= 2)
  }

  @Test func onlyLearnableAdaptersLearn() throws {
    let s = try Setup(examples: 4)
    let other = s.registry.directory + "/plain"
    let w = AdapterRegistry.freshWeights(
      name: "plain", config: s.model.model.config, rank: 2, alpha: 4, targets: [.q], seed: 1)
    try PEFTAdapter.write(w, to: other)
    _ = s.registry.rescan()
    let learner = Learner(model: s.model, registry: s.registry, log: s.log, configuration: s.configuration())
    defer { learner.stop() }
    #expect(throws: LearnerError.self) { try learner.learn(adapter: "plain") }
    #expect(throws: LearnerError.self) { try learner.learn(adapter: "missing") }
  }

  @Test func repetitionMeasures() {
    let varied = "The quick brown fox jumps over the lazy dog while a cat watches from the window sill."
    let repeated = String(repeating: "1. ", count: 30)
    #expect(Repetition.uniqueWordShare(varied) > 0.8)
    #expect(Repetition.uniqueWordShare(repeated) < 0.1)
    #expect(Repetition.compressionRatio(varied) > 0.8)
    #expect(Repetition.compressionRatio(repeated) < 0.2)
    #expect(Repetition.compressionRatio("") == 1)
  }
}
