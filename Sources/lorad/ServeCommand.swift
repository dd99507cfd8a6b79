import Adapters
import ArgumentParser
import Engine
import Foundation
import Learning
import Model
import Server

struct ServeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Run the daemon: JSON lines over TCP and a Unix socket, many adapters, continuous batching.",
    discussion: """
      Clients send one JSON object per line (see README, "Protocol"), e.g.
        {"op":"generate","id":"q1","adapter":"support","prompt":"Hello"}
      and get start / token / done events back. `lorad ask` and `lorad feedback` speak it for you.
      SIGTERM or SIGINT: stop accepting, let running requests finish for --grace seconds, cancel the
      rest, flush, exit 0. SIGHUP: rescan the adapters directory.
      """)

  @OptionGroup var modelOptions: ModelOptions
  @OptionGroup var kvOptions: KVOptions

  @Option(
    name: .long,
    help:
      "TCP address to listen on (HOST:PORT; port 0 picks one; default 127.0.0.1:7411 unless systemd passes sockets). \"none\" turns TCP off."
  )
  var listen: String?
  @Option(name: .long, help: "Also listen on this Unix socket (mode 0660).")
  var socket: String?
  @Option(name: .long, help: "Directory of named adapters (adapters/<name>/, versions/<N>/).")
  var adapters = "adapters"
  @Option(name: .long, help: "State directory (feedback log, learner state).")
  var state = "state"
  @Option(name: .customLong("adapter-memory"), help: "Memory budget for resident adapters (e.g. 256MB, 1GB).")
  var adapterMemory = "1GB"

  @Option(
    name: .customLong("adapter-type"),
    help: "Element type adapters are served in: q8 (int8 blocks, about half of f16's bytes, the default), f16 or f32.")
  var adapterType = "q8"
  @Option(name: .customLong("max-sequences"), help: "Sequences decoding together at most.")
  var maxSequences = 16
  @Option(name: .customLong("max-queued"), help: "Requests waiting at most; past it requests get `overloaded`.")
  var maxQueued = 256
  @Option(name: .customLong("max-per-connection"), help: "Requests one connection may have waiting or running.")
  var maxPerConnection = 64
  @Option(
    name: .customLong("output-buffer"),
    help: "Unsent output per connection before the daemon stops reading it; at 16 times this it closes it.")
  var outputBuffer = "1MB"
  @Option(name: .customLong("max-tokens"), help: "Default max_tokens of a request that gives none.")
  var maxTokens = 256
  @Option(name: .customLong("max-connections"), help: "Open connections at most.")
  var maxConnections = 1024
  @Option(name: .customLong("max-line"), help: "Longest request line in bytes (longer: `too_large`, then close).")
  var maxLine = 1 << 20
  @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may stay silent before it is closed.")
  var idleTimeout = 300.0
  @Option(name: .long, help: "Seconds running requests get to finish on SIGTERM before being cancelled.")
  var grace = 10.0
  @Option(name: .long, help: "JSON file of client keys; every connection must then authenticate first.")
  var keys: String?
  @Option(
    name: .customLong("retention-days"),
    help:
      "Days unrated generations stay in the feedback log (pruned at start and hourly; rated ones are kept); 0 keeps all."
  )
  var retentionDays = 30.0
  @Option(name: .long, help: "Online learning from feedback: on or off.")
  var learn = "on"
  @Option(name: .customLong("learn-batch"), help: "New feedback events on an adapter that start a learning run.")
  var learnBatch = 16
  @Option(name: .long, help: "Learning objective: kto, dpo (pairs of an up and a down on one prompt) or reinforce.")
  var loss = "kto"
  @Option(
    name: .customLong("learn-threads"),
    help: "Threads the learner trains on (its CPU share; it also runs at a lower priority than serving).")
  var learnThreads = 1
  @Option(name: .customLong("learn-lr"), help: .hidden)
  var learnLR: Float?
  @Option(name: .customLong("learn-steps"), help: .hidden)
  var learnSteps: Int?
  @Option(
    name: .long,
    help: "Text file whose perplexity the learner's gate bounds (default: the GPL-3 preamble, built in).")
  var calibration: String?

  func validate() throws {
    guard retentionDays >= 0 && retentionDays.isFinite else {
      throw ValidationError("--retention-days must be 0 or more")
    }
    guard ["on", "off"].contains(learn) else { throw ValidationError("--learn must be on or off") }
    guard LossKind(rawValue: loss) != nil else { throw ValidationError("--loss must be kto, dpo or reinforce") }
    guard (1...100_000).contains(learnBatch) else { throw ValidationError("--learn-batch must be 1...100000") }
    guard (1...256).contains(learnThreads) else { throw ValidationError("--learn-threads must be 1...256") }
    if let lr = learnLR, !(lr.isFinite && lr > 0) { throw ValidationError("--learn-lr must be positive") }
    guard (1...1024).contains(maxSequences) else { throw ValidationError("--max-sequences must be 1...1024") }
    guard (0...1_000_000).contains(maxQueued) else { throw ValidationError("--max-queued must be 0...1000000") }
    guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
    guard (1...1_000_000).contains(maxConnections) else {
      throw ValidationError("--max-connections must be 1...1000000")
    }
    guard (64...(64 << 20)).contains(maxLine) else { throw ValidationError("--max-line must be 64 B...64 MiB") }
    guard idleTimeout >= 0, grace >= 0 else { throw ValidationError("--idle-timeout and --grace cannot be negative") }
    _ = try MemorySize.parse(adapterMemory)
    _ = try AdapterOptions.residentType(adapterType)
    guard (1...1_000_000).contains(maxPerConnection) else {
      throw ValidationError("--max-per-connection must be 1...1000000")
    }
    guard (4096...(1 << 30)).contains(try MemorySize.parse(outputBuffer)) else {
      throw ValidationError("--output-buffer must be between 4KB and 1GB")
    }
  }

  func run() throws {
    // Signals go to a sigwait loop on this thread; every thread started from here inherits the mask.
    var signals = sigset_t()
    sigemptyset(&signals)
    for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, s) }
    pthread_sigmask(SIG_BLOCK, &signals, nil)

    let t0 = Date()
    let notify = try SystemdNotify()
    let inherited = try ListenFDs.take()
    let policy = try keys.map { path throws(KeysFileError) in try AuthPolicy(contentsOf: path) }
    let m = try modelOptions.load()
    try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
    let registry = try AdapterRegistry(
      directory: adapters, config: m.model.config, memoryBudget: try MemorySize.parse(adapterMemory),
      residentType: try AdapterOptions.residentType(adapterType))
    var config = DaemonConfiguration()
    config.server.inheritedListeners = inherited
    let tcp = listen ?? (inherited.isEmpty ? "127.0.0.1:7411" : "none")
    config.server.listen = tcp == "none" ? nil : tcp
    config.server.socketPath = socket
    guard config.server.listen != nil || socket != nil || !inherited.isEmpty else {
      throw ValidationError("nothing to listen on: with --listen none, give --socket PATH (or run under lorad.socket)")
    }
    config.server.maxConnections = maxConnections
    config.server.maxLineBytes = maxLine
    config.server.softOutputBytes = try MemorySize.parse(outputBuffer)
    config.server.hardOutputBytes = 16 * config.server.softOutputBytes
    config.engine.maxPerConnection = maxPerConnection
    config.server.idleTimeoutMilliseconds = UInt64(idleTimeout * 1000)
    config.engine.maxSequences = maxSequences
    config.engine.maxQueued = maxQueued
    config.engine.defaultMaxTokens = maxTokens
    config.engine.contextLength = modelOptions.ctx
    config.engine.kvType = kvOptions.kvType
    config.engine.threads = modelOptions.threads
    config.graceSeconds = grace
    var logConfiguration = FeedbackLog.Configuration()
    logConfiguration.retention = retentionDays > 0 ? retentionDays * 86_400 : nil
    let log = try FeedbackLog(stateDirectory: state, configuration: logConfiguration)
    _ = try? log.pruneExpired()
    let pruner = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
    pruner.schedule(deadline: .now() + 3600, repeating: 3600)
    pruner.setEventHandler {
      if let n = try? log.pruneExpired(), n > 0 {
        printError("lorad: pruned \(n) unrated generations past the retention")
      }
    }
    pruner.resume()
    var learner: Learner?
    if learn == "on" {
      var lc = LearnerConfiguration()
      lc.loss = LossKind(rawValue: loss) ?? .kto
      lc.batch = learnBatch
      lc.threads = learnThreads
      if let learnLR { lc.learningRate = learnLR }
      if let learnSteps { lc.stepsPerRun = max(1, learnSteps) }
      let text = try calibration.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? CalibrationText.gplPreamble
      lc.gate.calibrationTokens = m.tokenizer.encode(text)
      learner = Learner(model: m, registry: registry, log: log, configuration: lc)
    }
    let daemon = Daemon(
      model: m, registry: registry, log: log, policy: policy, learner: learner, configuration: config)
    try daemon.start()
    var where_: [String] = []
    if let l = config.server.listen, let p = daemon.server.tcpPort {
      where_.append("tcp \(l.split(separator: ":").dropLast().joined(separator: ":")):\(p)")
    }
    if let s = socket { where_.append("unix \(s)") }
    for i in inherited { where_.append("systemd \(i.name) \(i.address)") }
    if let policy { where_.append("\(policy.identities.count) keys") }
    printError(
      String(
        format: "lorad: serving on %@; %d adapters in %@; %d threads, %d sequences, context %d; ready in %.2f s",
        where_.joined(separator: ", "), registry.list().count, registry.directory, modelOptions.threads,
        maxSequences, modelOptions.ctx, Date().timeIntervalSince(t0)))
    try? notify?.ready(status: "serving on " + where_.joined(separator: ", "))
    let watchdog = notify?.startWatchdog { daemon.isHealthy }

    while true {
      var sig: Int32 = 0
      guard sigwait(&signals, &sig) == 0 else { continue }
      if sig == SIGHUP {
        try? notify?.reloading()
        let r = registry.rescan()
        try? notify?.ready(status: "rescanned adapters")
        printError(
          "lorad: rescanned \(registry.directory): \(r.added.count) added, \(r.removed.count) removed, "
            + "\(r.changed.count) changed")
        continue
      }
      printError("lorad: \(sig == SIGTERM ? "SIGTERM" : "SIGINT"): finishing running requests (grace \(grace) s)")
      try? notify?.stopping(status: "finishing running requests")
      watchdog?.stop()
      let cancelled = daemon.shutdown()
      try? log.close()
      let s = daemon.scheduler.stats
      printError("lorad: stopped; \(s.completed) requests completed, \(cancelled) cancelled at shutdown")
      return
    }
  }
}
