import Adapters
import ArgumentParser
import Foundation
import Learning
import Model

extension AdaptersCommand {
  /// `lorad adapters history NAME`: the versions on disk with what the learner recorded.
  struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "history",
      abstract: "List an adapter's versions: created, parent, outcome (promoted / rejected), metrics.",
      discussion: """
        Reads DIR/NAME/versions/N/lorad-version.json written by the learner. CUR marks the current \
        version, ANCHOR the reference policy the learner trains against (the version the adapter \
        had when learning began). Rejected versions stay on disk with their reason and never \
        become current.
        """)

    @Argument(help: "The adapter's name.") var name: String
    @OptionGroup var dir: DirectoryOptions
    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
      let config = try modelOptions.load().model.config
      let registry = try AdapterRegistry(directory: dir.directory, config: config, memoryBudget: Int.max / 2)
      let versions = try AdapterHistory.list(registry: registry, name: name)
      var rows = [["VERSION", "CREATED", "PARENT", "OUTCOME", "MARKS", "METRICS / REASON"]]
      for v in versions {
        let marks = [v.isCurrent ? "current" : nil, v.isAnchor ? "anchor" : nil].compactMap { $0 }
        let keys = ["held_out_loss", "ppl_drift", "kl_per_token", "unique_words"]
        var detail = keys.compactMap { k in v.metrics[k].map { String(format: "%@=%.4f", k, $0) } }.joined(
          separator: " ")
        if v.outcome == "rejected", let r = v.reason { detail = r }
        rows.append([
          "\(v.version)", v.created ?? "?", v.parent.map(String.init) ?? "-", v.outcome,
          marks.joined(separator: ","), detail,
        ])
      }
      List.printTable(rows)
    }
  }

  /// `lorad adapters rollback NAME [--to N]`: moves `current` (atomically) to N or the previous version.
  struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "rollback",
      abstract: "Make an earlier version current (default: the current version's parent).",
      discussion: """
        Replaces DIR/NAME/current atomically; a running daemon sees it on its next rescan (SIGHUP) \
        or use `{"op":"rollback",…}` against it. Rejected versions are refused.
        """)

    @Argument(help: "The adapter's name.") var name: String
    @Option(name: .long, help: "The version to make current.") var to: Int?
    @OptionGroup var dir: DirectoryOptions
    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
      let config = try modelOptions.load().model.config
      let registry = try AdapterRegistry(directory: dir.directory, config: config, memoryBudget: Int.max / 2)
      let before = try registry.resolve(name).version
      let v = try AdapterHistory.rollback(registry: registry, name: name, to: to)
      print("\(name): current version \(before) → \(v)")
    }
  }

  /// Hidden: writes random versions of NAME (the crash-safety test kills it mid-write).
  struct PublishRandom: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "publish-random", abstract: "Write random versions (crash-safety tests).", shouldDisplay: false)

    @Argument var name: String
    @Flag var loop = false
    @Option var seed: UInt64 = 1
    @OptionGroup var dir: DirectoryOptions
    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
      let config = try modelOptions.load().model.config
      let registry = try AdapterRegistry(directory: dir.directory, config: config, memoryBudget: Int.max / 2)
      let cur = try registry.resolve(name)
      let base = try LoRALoader.load(path: cur.path, config: config, name: name)
      var s = seed
      repeat {
        s &+= 1
        let fresh = AdapterRegistry.freshWeights(
          name: name, config: config, rank: base.pairs.values.first?.rank ?? 4,
          alpha: 2 * Float(base.pairs.values.first?.rank ?? 4), targets: Array(Set(base.pairs.keys.map(\.module))),
          seed: s)
        // B nonzero, so every version differs from the others.
        var pairs = fresh.pairs
        for (t, p) in pairs {
          var q = p
          q.b = (0..<p.b.count).map { Float(($0 &* 7 &+ Int(s)) % 13) * 1e-3 }
          pairs[t] = q
        }
        let w = LoRAWeights(name: name, pairs: pairs)
        let n = try registry.writeVersion(
          name: name, weights: w, files: ["optimizer.bin": [UInt8](repeating: UInt8(s & 0xff), count: 1 << 16)],
          makeCurrent: true)
        FileHandle.standardOutput.write(Data("version \(n)\n".utf8))
      } while loop
    }
  }
}
