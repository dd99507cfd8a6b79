import Adapters
import ArgumentParser
import Foundation
import Learning

/// `lorad log …`: the feedback log (STATE/lorad.db) from the command line.
struct LogCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "log",
    abstract: "Read the feedback log: export the ratings as training data, or print its counts.",
    discussion: """
      The daemon logs every finished generation (prompt, completion, token ids, logprobs, \
      adapter@version, sampling) and every thumbs-up/down to STATE/lorad.db (SQLite, WAL). Both \
      subcommands read it safely while the daemon runs.
      """,
    subcommands: [Export.self, Stats.self])

  /// `--state DIR`, shared by the subcommands.
  struct StateOptions: ParsableArguments {
    @Option(
      name: .customLong("state"),
      help: ArgumentHelp("The state directory holding lorad.db. Default: $LORAD_STATE, else ./state.", valueName: "dir")
    )
    var directory: String?

    var resolved: String {
      if let directory { return directory }
      if let env = ProcessInfo.processInfo.environment["LORAD_STATE"], !env.isEmpty { return env }
      return "./state"
    }

    /// Opens the existing log; a missing one is an error, never created here.
    func open() throws -> FeedbackLog {
      try FeedbackLog(path: resolved + "/" + FeedbackLog.fileName, create: false)
    }
  }

  struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "export",
      abstract: "Write the effective ratings as JSON lines for TRL's KTOTrainer (or DPOTrainer).",
      discussion: """
        kto (default): one line per rated generation, {"prompt": …, "completion": …, "label": \
        true|false} — TRL's unpaired preference format; label is true for thumbs-up. A request \
        rated twice counts once, with its latest rating. dpo: {"prompt": …, "chosen": …, \
        "rejected": …} for every pair of an up-rated and a down-rated completion of the same \
        prompt. The prompt is the exact text the model saw, chat template applied. Lines are in \
        the order the ratings arrived. Example: lorad log export --adapter support --out kto.jsonl
        """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
      case kto, dpo
      var export: FeedbackLog.ExportFormat { self == .kto ? .kto : .dpo }
    }

    @OptionGroup var state: StateOptions
    @Option(
      name: .long, help: "Only this adapter's generations (all its versions). Default: every adapter and the base.")
    var adapter: String?
    @Option(name: .long, help: ArgumentHelp("Write to this file instead of stdout.", valueName: "file"))
    var out: String?
    @Option(name: .long, help: "kto or dpo.")
    var format: Format = .kto

    func run() throws {
      let log = try state.open()
      defer { try? log.close() }
      let sink = try LineSink(path: out == "-" ? nil : out)
      let count: Int
      do {
        count = try log.export(format: format.export, adapter: adapter) { try sink.write($0) }
        try sink.finish()
      } catch {
        sink.abandon()
        throw error
      }
      let what = format == .kto ? "rated generations" : "preference pairs"
      printError("wrote \(count) \(what) to \(out.map { $0 == "-" ? "stdout" : $0 } ?? "stdout")")
    }
  }

  struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "stats",
      abstract: "Print what the feedback log holds: generations, ratings per adapter, learner runs.",
      discussion: """
        NEW counts the effective ratings the learner has not consumed yet (after its mark for \
        that adapter); the base model is never trained, so all its ratings count as new.
        """)

    @OptionGroup var state: StateOptions

    func run() throws {
      let log = try state.open()
      defer { try? log.close() }
      let st = try log.stats()
      let day = ISO8601DateFormatter()
      print(
        "log          \(log.path) (schema \(try log.schemaVersion()), \(MemorySize.format(st.databaseBytes)) "
          + "+ WAL \(MemorySize.format(st.walBytes)))")
      let span = st.oldest.map { " from \(day.string(from: $0)) to \(day.string(from: st.newest!))" } ?? ""
      print("generations  \(st.generations)\(span)")
      print("feedback     \(st.feedbackEvents) events rating \(st.ratedRequests) generations")
      print("learner runs \(st.learnerRuns)")
      if !st.adapters.isEmpty {
        var rows = [["ADAPTER", "GENERATIONS", "UP", "DOWN", "NEW"]]
        for a in st.adapters {
          rows.append([a.adapter ?? "(base)", "\(a.generations)", "\(a.up)", "\(a.down)", "\(a.new)"])
        }
        print("")
        printTable(rows)
      }
      let runs = try log.learnerRuns(limit: 5)
      if !runs.isEmpty {
        print("")
        var rows = [["TIME", "ADAPTER", "FROM", "TO", "OUTCOME", "REASON"]]
        for r in runs {
          rows.append([
            day.string(from: r.time), r.adapter, "\(r.fromVersion)", r.toVersion.map(String.init) ?? "-",
            r.outcome.rawValue, r.reason,
          ])
        }
        printTable(rows)
      }
    }

    func printTable(_ rows: [[String]]) {
      let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max()! }
      for r in rows {
        let line = zip(r, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        print(line.trimmingCharacters(in: .whitespaces))
      }
    }
  }
}

/// Lines to stdout, or to a file written beside its final name and renamed over it at the
/// end, so an interrupted export never leaves half a file under the name asked for.
final class LineSink {
  private let handle: FileHandle
  private let path: String?
  private let temporary: String?
  private var buffer: [UInt8] = []

  init(path: String?) throws {
    self.path = path
    guard let path else {
      handle = .standardOutput
      temporary = nil
      return
    }
    let tmp = path + ".tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: tmp, contents: nil), let h = FileHandle(forWritingAtPath: tmp) else {
      throw ValidationError("cannot write \(path): check that its directory exists and is writable")
    }
    handle = h
    temporary = tmp
  }

  func write(_ line: String) throws {
    buffer.append(contentsOf: line.utf8)
    buffer.append(UInt8(ascii: "\n"))
    if buffer.count >= 1 << 16 { try drain() }
  }

  private func drain() throws {
    try handle.write(contentsOf: buffer)
    buffer.removeAll(keepingCapacity: true)
  }

  func finish() throws {
    try drain()
    guard let path, let temporary else { return }
    try handle.close()
    guard rename(temporary, path) == 0 else {
      throw ValidationError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
    }
  }

  func abandon() {
    guard let temporary else { return }
    try? handle.close()
    try? FileManager.default.removeItem(atPath: temporary)
  }
}
