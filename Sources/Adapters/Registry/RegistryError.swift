/// Why the adapter registry refused a request. Every case says what was asked, where lorad
/// looked, and what to do about it.
public enum RegistryError: Error, CustomStringConvertible, Equatable, Sendable {
  /// A name outside [A-Za-z0-9_.-], or one that could escape the adapters directory.
  case badName(String, reason: String)
  /// No adapter of that name in the adapters directory; `known` lists those there are.
  case unknownAdapter(name: String, directory: String, known: [String])
  /// The adapter exists but not that version; `available` lists its versions.
  case unknownVersion(name: String, version: Int, available: [Int])
  /// The adapter's `current` file is unreadable, not a number, or names a missing version.
  case badCurrent(name: String, path: String, reason: String)
  /// `create` over an adapter that is already there.
  case alreadyExists(name: String, path: String)
  /// One adapter alone is larger than the whole residency budget.
  case budgetTooSmall(adapter: String, bytes: Int, budget: Int)
  /// Everything resident is leased by running sequences, and the adapter does not fit beside them.
  case budgetExhausted(adapter: String, bytes: Int, leasedBytes: Int, budget: Int)
  /// `publish` given weights that do not fit the base model.
  case badWeights(name: String, reason: String)
  /// A parameter out of range (rank, alpha, targets, memory size).
  case badArgument(String)
  /// A file-system operation of the registry itself failed.
  case io(path: String, reason: String)

  public var description: String {
    switch self {
    case .badName(let n, let r):
      return
        "bad adapter name '\(n)': \(r); names use only letters, digits, '_', '-' and '.', and select a version with @N"
    case .unknownAdapter(let n, let d, let known):
      let have = known.isEmpty ? "it holds no adapters" : "it holds: " + known.joined(separator: ", ")
      return
        "no adapter '\(n)' in \(d) (\(have)); create one with `lorad adapters new \(n) --rank R`, "
        + "or point --adapters at the right directory"
    case .unknownVersion(let n, let v, let avail):
      return
        "adapter '\(n)' has no version \(v); its versions are \(avail.map(String.init).joined(separator: ", ")) "
        + "(use '\(n)' for the current one)"
    case .badCurrent(let n, let p, let r):
      return "adapter '\(n)': \(p): \(r); write the version number wanted into it, or roll back with setCurrent"
    case .alreadyExists(let n, let p):
      return "adapter '\(n)' already exists at \(p); pick another name or remove that directory first"
    case .budgetTooSmall(let a, let b, let budget):
      return
        "adapter \(a) needs \(MemorySize.format(b)) resident, more than the whole adapter memory budget "
        + "(\(MemorySize.format(budget))); raise --adapter-memory"
    case .budgetExhausted(let a, let b, let leased, let budget):
      return
        "adapter \(a) (\(MemorySize.format(b))) does not fit: \(MemorySize.format(leased)) of the "
        + "\(MemorySize.format(budget)) budget is held by running sequences; retry when they finish, or raise --adapter-memory"
    case .badWeights(let n, let r): return "cannot publish a version of '\(n)': \(r)"
    case .badArgument(let r): return r
    case .io(let p, let r): return "\(p): \(r)"
    }
  }
}
