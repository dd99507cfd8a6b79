import Adapters
import ArgumentParser
import Foundation
import Model
import Server

/// `lorad adapters …`: the adapters directory from the command line.
struct AdaptersCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "adapters",
    abstract: "List the LoRA adapters in the adapters directory, or create a fresh trainable one.",
    discussion: """
      An adapter is a directory DIR/NAME/ holding a PEFT adapter (adapter_config.json + \
      adapter_model.safetensors) or a GGUF LoRA (adapter.gguf); that is version 0. Versions the \
      learner produces live in DIR/NAME/versions/N/, and DIR/NAME/current holds the number of \
      the version requests get by default. A request names an adapter as NAME (its current \
      version), NAME@N (that version) or a path. The model is needed for the shapes of the base \
      weights (--model, $LORAD_MODEL, or models/\(ModelOptions.defaultName)).
      """,
    subcommands: [List.self, New.self, History.self, Rollback.self, PublishRandom.self], defaultSubcommand: List.self)

  /// `--adapters DIR`, shared by the subcommands.
  struct DirectoryOptions: ParsableArguments {
    @Option(name: .customLong("adapters"), help: ArgumentHelp("The adapters directory.", valueName: "dir"))
    var directory: String = "./adapters"
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "list",
      abstract: "Print a table of the adapters: name, versions, current, rank, targets, bytes, resident.",
      discussion: """
        VERSIONS are the version numbers on disk (0 is DIR/NAME itself), CURRENT the one a plain \
        NAME selects, RANK the largest rank and TARGETS the modules of the current version, BYTES \
        the size of all versions' files. RESIDENT is always "no" here: this command loads nothing \
        to serve; with --connect ADDR the running daemon answers instead (op "adapters"), with its \
        residency and the current version's bytes. A "*" after a name marks an adapter the \
        learner may grow.
        """)

    @OptionGroup var dir: DirectoryOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var connection: ConnectOptions

    func run() throws {
      if connection.connect != nil { return try remote() }
      let config = try modelOptions.load().model.config
      let registry = try AdapterRegistry(directory: dir.directory, config: config, memoryBudget: Int.max / 2)
      let all = registry.list()
      if all.isEmpty {
        print("no adapters in \(registry.directory); create one with `lorad adapters new NAME --rank 8`")
        return
      }
      var rows = [["NAME", "VERSIONS", "CURRENT", "RANK", "TARGETS", "BYTES", "RESIDENT"]]
      for a in all {
        rows.append([
          a.name + (a.learnable ? "*" : ""), Self.ranges(a.versions), a.current.map(String.init) ?? "?",
          a.rank.map(String.init) ?? "?", Self.targets(a.targets), MemorySize.format(a.diskBytes),
          a.resident ? "yes (\(MemorySize.format(a.residentBytes)))" : "no",
        ])
      }
      Self.printTable(rows)
      for a in all { if let p = a.problem { printError("\(a.name): \(p)") } }
    }

    /// The table from a running daemon's `adapters` reply.
    func remote() throws {
      let client = try connection.open()
      let reply = try client.call(["op": .string("adapters"), "id": .string("adapters")])
      guard case .array(let items)? = reply["adapters"] else {
        printError("error: the daemon's reply has no \"adapters\" list")
        throw ExitCode.failure
      }
      if items.isEmpty {
        print("the daemon at \(client.address) has no adapters")
        return
      }
      var rows = [["NAME", "VERSIONS", "CURRENT", "RANK", "TARGETS", "BYTES", "RESIDENT"]]
      var problems: [String] = []
      for case .object(let a) in items {
        let name = a.string("name") ?? "?"
        var versions: [Int] = []
        if case .array(let v)? = a["versions"] {
          versions = v.compactMap { if case .integer(let n) = $0 { Int(n) } else { nil } }
        }
        var targets: [String] = []
        if case .array(let t)? = a["targets"] {
          targets = t.compactMap { if case .string(let s) = $0 { s } else { nil } }
        }
        let resident = a["resident"] == .bool(true)
        rows.append([
          name + (a["learnable"] == .bool(true) ? "*" : ""), Self.ranges(versions),
          a.int("current").map(String.init) ?? "?",
          a.int("rank").map(String.init) ?? "?",
          targets.isEmpty ? "?" : targets.count == LoRAModule.allCases.count ? "all" : targets.joined(separator: ","),
          a.int("bytes").map { MemorySize.format($0) } ?? "?",
          resident ? "yes (\(MemorySize.format(a.int("resident_bytes") ?? 0)))" : "no",
        ])
        if let p = a.string("problem") { problems.append("\(name): \(p)") }
      }
      Self.printTable(rows)
      for p in problems { printError(p) }
    }

    static func printTable(_ rows: [[String]]) {
      let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max()! }
      for r in rows {
        let line = zip(r, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        print(line.trimmingCharacters(in: .whitespaces))
      }
    }

    /// 0,1,2,3,7 → "0-3,7".
    static func ranges(_ v: [Int]) -> String {
      var parts: [String] = []
      var i = 0
      while i < v.count {
        var j = i
        while j + 1 < v.count && v[j + 1] == v[j] + 1 { j += 1 }
        parts.append(j == i ? "\(v[i])" : "\(v[i])-\(v[j])")
        i = j + 1
      }
      return parts.joined(separator: ",")
    }

    static func targets(_ m: [LoRAModule]) -> String {
      m.isEmpty ? "?" : m.count == LoRAModule.allCases.count ? "all" : m.map(\.shortName).joined(separator: ",")
    }
  }

  struct New: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "new",
      abstract: "Create a fresh trainable adapter: A random from the seed, B zero, so its output equals the base.",
      discussion: """
        Writes DIR/NAME/ as a PEFT adapter (F32) with lorad.json marking it learnable; it becomes \
        version 0 and current, and the learner grows it from feedback. A is drawn as PEFT does \
        (Kaiming-uniform, ±1/√in) from --seed; the scale is alpha / rank. Every layer gets the \
        target modules. Example: lorad adapters new support --rank 8 --targets q,k,v,o
        """)

    @Argument(help: "Name of the adapter: letters, digits, '_', '-' and '.'.")
    var name: String
    @Option(name: .long, help: "LoRA rank r.")
    var rank: Int
    @Option(name: .long, help: "LoRA alpha; the scale is alpha / rank. Default: 2 × rank.")
    var alpha: Float?
    @Option(
      name: .long,
      help: "Modules to adapt, comma-separated from q,k,v,o,gate,up,down, or all.")
    var targets: String = "q,v"
    @Option(name: .long, help: "Random seed for A.")
    var seed: UInt64 = 0
    @OptionGroup var dir: DirectoryOptions
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
      do { try AdapterSpec.validate(name: name) } catch { throw ValidationError("\(error)") }
      guard rank >= 1 else { throw ValidationError("--rank must be at least 1") }
      if let alpha, !(alpha.isFinite && alpha > 0) { throw ValidationError("--alpha must be a positive number") }
      do { _ = try LoRAModule.parseList(targets) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
      let config = try modelOptions.load().model.config
      let modules = try LoRAModule.parseList(targets)
      let registry = try AdapterRegistry(directory: dir.directory, config: config, memoryBudget: Int.max / 2)
      let a = alpha ?? Float(2 * rank)
      let ref = try registry.create(name: name, rank: rank, alpha: a, targets: modules, seed: seed)
      let files = FileManager.default.enumerator(atPath: ref.path)?.allObjects as? [String] ?? []
      let bytes = files.compactMap { f in
        (try? FileManager.default.attributesOfItem(atPath: ref.path + "/" + f)[.size]) as? Int
      }.reduce(0, +)
      print(
        "created \(name) at \(ref.path): rank \(rank), alpha \(a), targets "
          + "\(List.targets(modules)) on \(config.layers) layers, \(MemorySize.format(bytes)); version 0, learnable")
    }
  }
}
