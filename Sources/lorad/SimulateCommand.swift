import Adapters
import ArgumentParser
import Foundation
import Learning
import Model
import Server

extension Preference: ExpressibleByArgument {}

/// `lorad simulate`: the learning demonstration — a simulated user with a hidden preference
/// rates answers over rounds of generate → rate → feedback → learn.
struct SimulateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "simulate",
    abstract: "Demonstrate online learning: a simulated user with a hidden taste rates answers; the daemon learns.",
    discussion: """
      Starts a daemon (lorad serve on a Unix socket in a work directory) or uses a running one \
      (--connect, with --adapters naming its adapters directory), creates a fresh adapter (rank 8, \
      all seven projections, as `lorad adapters new`), and runs rounds: --batch prompts drawn from \
      the training prompts are answered through the adapter (temperature 0.8, 64 tokens, chat \
      template), the simulated user rates each (thumbs up when the answer has the preferred \
      property and is not degenerate — empty, repetitive or copying itself), the ratings go to the \
      daemon as feedback, and `learn` runs with wait. After each round (and once before any, round \
      0) it measures, on held-out prompts never used for feedback, the share of answers the user \
      would like and the share that are degenerate, and the perplexity drift of the current version \
      vs the base on a few hundred tokens of general text. Stops after --events feedback events or \
      --rounds rounds. Preferences: \(Preference.allCases.map { "\($0.rawValue) (\($0.summary))" }.joined(separator: "; ")).
      Example: lorad simulate --preference short --out short.jsonl --plot short.png
      """)

  @OptionGroup var modelOptions: ModelOptions
  @OptionGroup var connection: ConnectOptions
  @Option(name: .long, help: "The simulated user's hidden taste.")
  var preference: Preference = .short
  @Option(name: .long, help: "Stop after this many feedback events (240: 15 rounds, under 15 minutes on 2 cores).")
  var events = 240
  @Option(
    name: .long, help: "Stop after this many rounds (default: when --events is reached); 0 measures round 0 only.")
  var rounds: Int?
  @Option(name: .long, help: "Answers rated per round.")
  var batch = 16
  @Option(name: .long, help: "Seed of the prompt order, the sampling and the adapter's A.")
  var seed: UInt64 = 0
  @Option(name: .customLong("heldout-samples"), help: "Answers per held-out prompt per evaluation.")
  var heldOutSamples = 1
  @Option(name: .customLong("max-tokens"), help: "Tokens per answer at most.")
  var maxTokens = 64
  @Option(name: .long, help: "Sampling temperature (top-k 40, top-p 0.95, min-p 0.05: the daemon's defaults).")
  var temperature = 0.8
  @Option(name: .long, help: "Rank of the fresh adapter.")
  var rank = 8
  @Option(name: .long, help: "Modules of the fresh adapter, comma-separated from q,k,v,o,gate,up,down, or all.")
  var targets = "all"
  @Option(name: .customLong("train-prompts"), help: "Prompts rated for feedback, one per line.")
  var trainPrompts = "bench/learn/prompts-train.txt"
  @Option(name: .customLong("heldout-prompts"), help: "Held-out prompts (never rated for feedback), one per line.")
  var heldOutPrompts = "bench/learn/prompts-heldout.txt"
  @Option(name: .long, help: "General text for the perplexity drift.")
  var calibration = "Tests/ModelTests/Fixtures/gpl3.txt"
  @Option(name: .customLong("ppl-ctx"), help: "Perplexity chunk size in tokens (half of each chunk is scored).")
  var pplCtx = 256
  @Option(name: .customLong("ppl-chunks"), help: "Perplexity chunks.")
  var pplChunks = 3
  @Option(name: .long, help: "Write one JSON object per round to this file (JSONL).")
  var out: String?
  @Option(name: .long, help: "Render the curve to this PNG file.")
  var plot: String?
  @Option(
    name: .long,
    help: "Work directory (adapters, state, daemon log), kept afterwards. Default: a temporary one, removed.")
  var work: String?
  @Option(name: .long, help: "With --connect: the daemon's adapters directory, where the fresh adapter is created.")
  var adapters = "adapters"
  @Flag(
    name: .long,
    help:
      "Measure only: answer the held-out prompts through the fresh adapter (= the base) and print every preference's up-rate; with --out, one JSON line per answer."
  )
  var baselines = false
  @Flag(
    name: .customLong("serving-while-learning"),
    help:
      "Measure instead how much of its idle decode throughput serving keeps while the learner trains (--rounds repetitions, default 3; the daemon's own --learn-threads, 1 by default)."
  )
  var servingWhileLearning = false
  @Option(
    name: .customLong("serve-arg"), parsing: .unconditionalSingleValue,
    help:
      "An extra argument for the daemon this command starts (repeatable; it runs with --max-sequences 32, and --learn-threads as many as --threads since nothing is served while a round learns, unless told otherwise), e.g. --serve-arg=--max-sequences=16."
  )
  var serveArgs: [String] = []

  func validate() throws {
    guard events >= 1 else { throw ValidationError("--events must be at least 1") }
    if let rounds, rounds < 0 { throw ValidationError("--rounds cannot be negative") }
    guard (1...1024).contains(batch) else { throw ValidationError("--batch must be 1...1024") }
    guard (1...64).contains(heldOutSamples) else { throw ValidationError("--heldout-samples must be 1...64") }
    guard (1...4096).contains(maxTokens) else { throw ValidationError("--max-tokens must be 1...4096") }
    guard temperature >= 0 && temperature <= 10 else { throw ValidationError("--temperature must be 0...10") }
    guard rank >= 1 else { throw ValidationError("--rank must be at least 1") }
    do { _ = try LoRAModule.parseList(targets) } catch { throw ValidationError("\(error)") }
    guard pplCtx >= 16, pplCtx % 2 == 0, (1...64).contains(pplChunks) else {
      throw ValidationError("--ppl-ctx must be even and at least 16; --ppl-chunks 1...64")
    }
  }

  func run() throws {
    let train = try Self.lines(Self.find(trainPrompts), what: "--train-prompts")
    let heldOut = try Self.lines(Self.find(heldOutPrompts), what: "--heldout-prompts")
    let calibrationPath = try Self.find(calibration)
    guard let calibrationText = try? String(contentsOfFile: calibrationPath, encoding: .utf8) else {
      throw ValidationError("--calibration \(calibrationPath): cannot read it as UTF-8 text")
    }
    let own = connection.connect == nil
    let workDir = work ?? NSTemporaryDirectory() + "lorad-simulate-\(getpid())-\(Int(Date().timeIntervalSince1970))"
    try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
    defer { if work == nil { try? FileManager.default.removeItem(atPath: workDir) } }
    let adaptersDir = own ? workDir + "/adapters" : adapters
    let name =
      own ? "sim-\(preference.rawValue)" : "sim-\(preference.rawValue)-\(getpid())-\(Int(Date().timeIntervalSince1970))"

    let t0 = Date()
    let modelPath = try modelOptions.resolvedModelPath()
    let loaded = try LoadedModel(path: modelPath)
    let registry = try AdapterRegistry(directory: adaptersDir, config: loaded.model.config, memoryBudget: 1 << 30)
    try registry.create(
      name: name, rank: rank, alpha: Float(2 * rank), targets: try LoRAModule.parseList(targets), seed: seed)
    printError("simulate: fresh adapter \(name) (rank \(rank), targets \(targets)) in \(adaptersDir)")

    var daemon: DaemonProcess?
    defer { daemon?.stop() }
    let client: LineClient
    if own {
      daemon = try DaemonProcess(
        work: workDir, adapters: adaptersDir, model: modelPath, threads: modelOptions.threads,
        extra: ["--max-sequences", "32", "--learn-batch", "100000"]
          + (servingWhileLearning ? [] : ["--learn-threads", "\(modelOptions.threads)"]) + serveArgs)
      client = try LineClient(connect: daemon!.socketPath)
      printError("simulate: lorad serve started on \(daemon!.socketPath) (log: \(daemon!.logPath))")
    } else {
      client = try connection.open()
    }
    let sim = SimulationClient(client)
    let meter = try DriftMeter(
      loaded: loaded, adaptersDirectory: adaptersDir, text: calibrationText, ctx: pplCtx, chunks: pplChunks,
      threads: modelOptions.threads)
    printError(
      String(format: "simulate: base perplexity %.4f on %d tokens of ", meter.base, meter.scored) + calibration)

    if servingWhileLearning {
      let second = own ? try LineClient(connect: daemon!.socketPath) : try connection.open()
      return try measureServingWhileLearning(
        sim, learner: SimulationClient(second), train: train, adapter: name,
        user: SimulatedUser(preference: preference),
        repetitions: rounds ?? 3)
    }
    if baselines {
      return try measureBaselines(sim, heldOut, adapter: name, seconds: { Date().timeIntervalSince(t0) })
    }
    let user = SimulatedUser(preference: preference)
    let jsonl = try out.map { try JSONLWriter(path: $0) }
    var records: [RoundRecord] = []
    func emit(_ r: RoundRecord) {
      records.append(r)
      Self.say(r.line)
      jsonl?.write(.object(r.json(preference: preference.rawValue, seed: seed)))
    }
    Self.say(
      "preference \(preference.rawValue): \(preference.summary); \(heldOut.count * heldOutSamples) held-out answers per round"
    )
    Self.say(RoundRecord.header)

    // Training prompts are drawn in shuffled passes over the set; each answer gets its own seed.
    var rng = Xoshiro256(seed: seed)
    var order: [String] = []
    var planned = 0
    func trainAsks(forRound r: Int) -> [SimulationClient.Ask] {
      guard r <= (rounds ?? Int.max) else { return [] }
      var asks: [SimulationClient.Ask] = []
      while planned < events && asks.count < batch {
        if order.isEmpty { order = train.shuffled(using: &rng) }
        planned += 1
        asks.append(.init(prompt: order.removeLast(), seed: seed &* 1_000_003 &+ UInt64(planned)))
      }
      return asks
    }

    // Round 0: the fresh adapter (equal to the base) before any feedback. Each evaluation also
    // answers the next round's training prompts: both come from the same (current) version, and
    // one batch keeps the daemon's sequences full.
    var start = Date()
    var (eval, pending) = try evaluate(sim, heldOut, adapter: name, user: user, alongside: trainAsks(forRound: 1))
    var ppl = try meter.perplexity(adapter: name, version: eval.version ?? 0)
    emit(
      RoundRecord(
        round: 0, events: 0, heldOutUpRate: eval.up, heldOutDegenerate: eval.degenerate, heldOutLiked: eval.liked,
        trainUpRate: nil, version: eval.version, ppl: ppl, basePPL: meter.base, outcome: "-", reason: nil,
        metrics: nil, learnSeconds: 0, roundSeconds: Date().timeIntervalSince(start),
        wallSeconds: Date().timeIntervalSince(t0), examples: eval.examples))

    var sent = 0
    var round = 0
    var warned = false
    while !pending.isEmpty {
      round += 1
      start = Date()
      let verdicts = pending.map { user.rate($0.text, finish: $0.finish) }
      try sim.feedback(zip(pending, verdicts).map { ($0.request, $1.up) })
      sent += pending.count
      let learned = try sim.learn(adapter: name)
      if learned.outcome == "error" && !warned {
        printError("simulate: learn failed (\(learned.reason ?? "")); going on without learning")
        warned = true
      }
      (eval, pending) = try evaluate(sim, heldOut, adapter: name, user: user, alongside: trainAsks(forRound: round + 1))
      ppl = try meter.perplexity(adapter: name, version: eval.version ?? learned.version ?? 0)
      emit(
        RoundRecord(
          round: round, events: sent, heldOutUpRate: eval.up, heldOutDegenerate: eval.degenerate,
          heldOutLiked: eval.liked, trainUpRate: Double(verdicts.filter(\.up).count) / Double(verdicts.count),
          version: eval.version, ppl: ppl, basePPL: meter.base, outcome: learned.outcome, reason: learned.reason,
          metrics: learned.metrics, learnSeconds: learned.seconds, roundSeconds: Date().timeIntervalSince(start),
          wallSeconds: Date().timeIntervalSince(t0), examples: eval.examples))
    }
    try jsonl?.close()
    if let plot {
      try Data(RoundRecord.plot(records, preference: preference).encoded()).write(to: URL(fileURLWithPath: plot))
      printError("simulate: curve written to \(plot)")
    }
    Self.say(Self.summary(records))
  }

  /// What the held-out answers of one evaluation came to.
  struct Evaluation {
    var up: Double, degenerate: Double, liked: Double
    var version: Int?
    var examples: [String]
  }

  /// Answers every held-out prompt `--heldout-samples` times through the current version, with
  /// the same seeds every round (so rounds differ by the adapter only), and rates them without
  /// sending feedback; `train` is answered in the same batch and returned unrated.
  func evaluate(
    _ sim: SimulationClient, _ prompts: [String], adapter: String, user: SimulatedUser,
    alongside train: [SimulationClient.Ask] = []
  ) throws -> (Evaluation, [SimulationClient.Answer]) {
    let asks = heldOutAsks(prompts)
    let all = try sim.generate(asks + train, adapter: adapter, maxTokens: maxTokens, temperature: temperature)
    let answers = all.prefix(asks.count)
    let v = answers.map { user.rate($0.text, finish: $0.finish) }
    let n = Double(v.count)
    let versions = Set(all.compactMap(\.version))
    if versions.count > 1 { printError("simulate: one batch was answered by versions \(versions.sorted())") }
    let e = Evaluation(
      up: Double(v.filter(\.up).count) / n, degenerate: Double(v.filter(\.degenerate).count) / n,
      liked: Double(v.filter(\.liked).count) / n, version: versions.max(),
      examples: answers.prefix(3).map { "\($0.prompt) → \($0.text) [\($0.finish)]" })
    return (e, Array(all.dropFirst(asks.count)))
  }

  /// The held-out prompts, each `--heldout-samples` times, with seeds that are the same every round.
  func heldOutAsks(_ prompts: [String]) -> [SimulationClient.Ask] {
    var asks: [SimulationClient.Ask] = []
    for s in 0..<heldOutSamples {
      for (i, p) in prompts.enumerated() {
        asks.append(.init(prompt: p, seed: seed &* 1_000_003 &+ 500_000 &+ UInt64(s * prompts.count + i)))
      }
    }
    return asks
  }

  /// The closing lines: baseline → end, and the demonstration's bounds.
  static func summary(_ r: [RoundRecord]) -> String {
    guard let first = r.first, let last = r.last else { return "no rounds" }
    let gain = 100 * (last.heldOutUpRate - first.heldOutUpRate)
    let ok =
      (gain >= 30 || last.heldOutUpRate >= 0.8) && last.heldOutDegenerate <= 0.1 && last.drift < 0.05
      && last.wallSeconds < 900
    return String(
      format:
        "held-out up-rate %.1f%% → %.1f%% (%+.1f points) after %d events; degenerate %.1f%%; ppl drift %+.2f%%; %.0f s — ",
      100 * first.heldOutUpRate, 100 * last.heldOutUpRate, gain, last.events, 100 * last.heldOutDegenerate,
      100 * last.drift, last.wallSeconds) + (ok ? "within the demonstration's bounds" : "NOT within the bounds")
  }

  /// Writes a line to stdout at once (a round's line shows while the next round runs).
  static func say(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }

  /// `path` as given, else relative to the lorad package the binary was built in.
  static func find(_ path: String) throws -> String {
    if path.hasPrefix("/") || FileManager.default.fileExists(atPath: path) { return path }
    var dir = URL(fileURLWithPath: DaemonProcess.selfExecutable()).deletingLastPathComponent()
    for _ in 0..<4 {
      let c = dir.appendingPathComponent(path).path
      if FileManager.default.fileExists(atPath: c) { return c }
      dir = dir.deletingLastPathComponent()
    }
    throw ValidationError("\(path): no such file here or in the lorad package; pass its path")
  }

  static func lines(_ path: String, what: String) throws -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
      throw ValidationError("\(what) \(path): cannot read the file")
    }
    let l = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !l.isEmpty else { throw ValidationError("\(what) \(path): no prompts in it") }
    return l
  }
}

/// Appends JSON lines to a file, one object per line.
final class JSONLWriter {
  let handle: FileHandle
  init(path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path)
    else { throw ValidationError("--out \(path): cannot create the file") }
    handle = h
  }
  func write(_ v: JSONValue) { handle.write(Data((JSONWriter.string(v) + "\n").utf8)) }
  func close() throws { try handle.close() }
}
