import Adapters
import ArgumentParser
import Foundation
import Model
import Tensor

/// `--adapter NAME|PATH[:SCALE]` (repeatable) and where adapters live: shared by the commands
/// that run the model. Several adapters apply together, as a weighted sum of their deltas.
struct AdapterOptions: ParsableArguments {
  @Option(
    name: .long,
    help: ArgumentHelp(
      "A LoRA adapter to apply: a name in --adapters (its current version, or NAME@N), a PEFT directory or a .gguf file, with an optional :SCALE (e.g. adapters/legal:0.5). Repeatable.",
      valueName: "NAME|PATH[:SCALE]"))
  var adapter: [String] = []

  @Option(name: .long, help: "Directory of named adapters.")
  var adapters: String = "adapters"

  @Option(name: .customLong("adapter-memory"), help: "Memory budget for resident adapters (e.g. 256MB, 1GB).")
  var adapterMemory: String = "1GB"

  @Option(
    name: .customLong("adapter-type"),
    help:
      "Element type adapters are served in: q8 (int8 blocks of 32 with a scale: about half of f16's bytes, the default), f16, or f32 (exact)."
  )
  var adapterType: String = "q8"

  /// The registry's resident type for an `--adapter-type` value.
  static func residentType(_ s: String) throws -> GGMLType {
    switch s.lowercased() {
    case "q8", "q8_0", "int8": return .q8_0
    case "f16": return .f16
    case "f32": return .f32
    default: throw ValidationError("--adapter-type \(s): expected q8, f16 or f32")
    }
  }

  var residentType: GGMLType { (try? Self.residentType(adapterType)) ?? .q8_0 }

  /// One `--adapter` value split into its spec and scale.
  static func split(_ s: String) throws -> (spec: String, scale: Float) {
    if let i = s.lastIndex(of: ":"), let scale = Float(s[s.index(after: i)...]) {
      guard scale.isFinite, abs(scale) <= 100 else {
        throw ValidationError("adapter scale \(scale) is out of range (|scale| ≤ 100)")
      }
      return (String(s[..<i]), scale)
    }
    return (s, 1)
  }

  func validate() throws {
    for a in adapter { _ = try Self.split(a) }
    _ = try MemorySize.parse(adapterMemory)
    _ = try Self.residentType(adapterType)
  }

  /// The registry and the leases of the requested adapters, as one mix (nil without adapters).
  /// Keep the returned leases alive while generating.
  func resolve(config: LlamaConfig) throws -> (mix: AdapterMix?, leases: [AdapterLease]) {
    guard !adapter.isEmpty else { return (nil, []) }
    let registry = try AdapterRegistry(
      directory: adapters, config: config, memoryBudget: try MemorySize.parse(adapterMemory),
      residentType: residentType)
    var leases: [AdapterLease] = []
    var parts: [AdapterMix.Part] = []
    for a in adapter {
      let (spec, scale) = try Self.split(a)
      let t0 = Date()
      let lease = try registry.acquire(spec)
      printError(
        String(
          format: "adapter %@@%d (rank %d, %@) loaded in %.1f ms, scale %g", lease.name, lease.version,
          lease.adapter.maxRank, MemorySize.format(lease.adapter.bytes), Date().timeIntervalSince(t0) * 1000,
          scale))
      leases.append(lease)
      parts.append(AdapterMix.Part(source: lease.adapter, scale: scale))
    }
    return (AdapterMix(parts), leases)
  }
}
