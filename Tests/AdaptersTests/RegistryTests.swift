import Foundation
import Model
import Tensor
import TestSupport
import Testing

@testable import Adapters

/// A tiny base model and fresh adapters directories for the registry tests.
enum RegistryFixture {
  /// One tiny model (2 layers, dim 64), written once per test process.
  static let model: LlamaModel = {
    let path = TinyModel.temporaryPath("registry-base.gguf")
    try! TinyModel.write(to: path, seed: 11)
    return try! LlamaModel(path: path)
  }()
  static var config: LlamaConfig { model.config }

  /// An empty, not yet existing adapters directory.
  static func directory() -> String { TinyModel.temporaryPath("adapters") }

  static func registry(_ dir: String, budget: Int = 1 << 30) throws -> AdapterRegistry {
    try AdapterRegistry(directory: dir, config: config, memoryBudget: budget)
  }

  /// The weights as a registry serves them (rounded to its resident type).
  static func served(_ w: LoRAWeights, _ reg: AdapterRegistry) -> LoRAWeights {
    ResidentAdapter(w, layers: config.layers, type: reg.residentType).weights
  }

  /// Logits of every position of a fixed prompt, with or without an adapter.
  static func logits(_ mix: AdapterMix?) -> [[Float]] {
    let tokens: [Int32] = [3, 17, 99, 140, 8, 255, 31]
    let ctx = LlamaContext(model: model, threads: 2, maxBatch: 8, maxContext: 16)
    let cache = ctx.makeCache()
    let b = Batch()
    for (i, t) in tokens.enumerated() { b.add(t, position: i, cache: cache, logits: true, adapters: mix) }
    ctx.forward(b)
    return (0..<tokens.count).map { MixedBatchTests.logitsRow(ctx, $0) }
  }

  static func maxDiff(_ x: [[Float]], _ y: [[Float]]) -> Float {
    zip(x, y).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
  }
}

/// The error `body` throws, if it is a `RegistryError`.
func registryError(_ body: () throws -> Void) -> RegistryError? {
  do {
    try body()
    return nil
  } catch let e as RegistryError {
    return e
  } catch {
    return nil
  }
}

func isBadName(_ e: RegistryError?) -> Bool {
  if case .badName = e { return true }
  return false
}

@Suite struct RegistryTests {
  /// create → list → resolve → acquire: a fresh adapter (B = 0) leaves the output exactly the base's.
  @Test func freshAdapterListsResolvesAndEqualsTheBase() throws {
    let dir = RegistryFixture.directory()
    let reg = try RegistryFixture.registry(dir)
    #expect(reg.list().isEmpty)
    let ref = try reg.create(name: "fresh", rank: 4, alpha: 8, targets: [.v, .q], seed: 7)
    #expect(ref == AdapterRef(kind: .registered, name: "fresh", version: 0, path: reg.directory + "/fresh"))

    let listed = reg.list()
    #expect(listed.count == 1)
    let s = try #require(listed.first)
    #expect(s.name == "fresh" && s.versions == [0] && s.current == 0)
    #expect(s.rank == 4 && s.targets == [.q, .v] && s.learnable && s.problem == nil)
    #expect(s.diskBytes > 0 && s.diskBytes == s.currentDiskBytes && !s.resident && s.residentBytes == 0)

    #expect(try reg.resolve("fresh") == ref)
    #expect(try reg.resolve("fresh@0") == ref)
    let lease = try reg.acquire("fresh")
    #expect(lease.name == "fresh" && lease.version == 0)
    let w = lease.adapter.weights
    #expect(w.pairs.count == 2 * RegistryFixture.config.layers)
    for p in w.pairs.values {
      let bound = 1 / Float(p.cols).squareRoot()
      #expect(p.rank == 4 && p.scale == 2)
      #expect(p.b.allSatisfy { $0 == 0 })
      #expect(p.a.allSatisfy { abs($0) <= bound } && p.a.contains { abs($0) > bound / 2 })
    }
    // The same seed gives the same A.
    let again = AdapterRegistry.freshWeights(
      name: "x", config: RegistryFixture.config, rank: 4, alpha: 8, targets: [.q, .v], seed: 7)
    let served = RegistryFixture.served(again, reg)
    #expect(again.pairs.keys.allSatisfy { served.pairs[$0]!.a == w.pairs[$0]!.a })

    let withAdapter = RegistryFixture.logits(AdapterMix(lease.adapter))
    let base = RegistryFixture.logits(nil)
    #expect(RegistryFixture.maxDiff(withAdapter, base) <= 1e-6)
    #expect(reg.list().first?.resident == true)
    #expect(reg.list().first?.residentBytes == lease.adapter.bytes)
    lease.release()
    lease.release()  // harmless
    #expect(reg.stats.leases == 0)
  }

  /// publish makes version 1 current while a lease on version 0 keeps its weights; name@N picks
  /// a version; setCurrent rolls back.
  @Test func publishKeepsOldLeasesAndSetCurrentRollsBack() throws {
    let reg = try RegistryFixture.registry(RegistryFixture.directory())
    try reg.create(name: "x", rank: 2, alpha: 4, targets: [.q, .v], seed: 1)
    let old = try reg.acquire("x")
    let learned = randomLoRA("learned", RegistryFixture.config, rank: 2, alpha: 4, seed: 3)
    #expect(try reg.publish(name: "x", weights: learned) == 1)
    #expect(try reg.resolve("x").version == 1)
    #expect(try reg.resolve("x@0").version == 0)
    #expect(FileManager.default.fileExists(atPath: reg.directory + "/x/versions/1/adapter_model.safetensors"))
    #expect(try String(contentsOfFile: reg.directory + "/x/current", encoding: .utf8) == "1\n")

    let new = try reg.acquire("x")
    #expect(new.version == 1 && old.version == 0)
    let served = RegistryFixture.served(learned, reg)
    for (t, p) in served.pairs {
      #expect(new.adapter.weights.pairs[t]!.b == p.b && new.adapter.weights.pairs[t]!.a == p.a)
      #expect(old.adapter.weights.pairs[t]?.b.allSatisfy { $0 == 0 } ?? true)
    }
    // The old lease still computes the base; the new one does not.
    let base = RegistryFixture.logits(nil)
    #expect(RegistryFixture.maxDiff(RegistryFixture.logits(AdapterMix(old.adapter)), base) <= 1e-6)
    #expect(RegistryFixture.maxDiff(RegistryFixture.logits(AdapterMix(new.adapter)), base) > 1e-3)

    #expect(try reg.publish(name: "x", weights: learned) == 2)
    let s = try #require(reg.list().first)
    #expect(s.versions == [0, 1, 2] && s.current == 2 && s.rank == 2 && s.targets == LoRAModule.allCases)
    #expect(s.learnable)

    try reg.setCurrent(name: "x", version: 0)
    #expect(try reg.resolve("x").version == 0)
    let back = try reg.acquire("x")
    #expect(back.adapter === old.adapter)  // still resident: the same copy
    #expect(
      registryError { try reg.setCurrent(name: "x", version: 9) }
        == .unknownVersion(name: "x", version: 9, available: [0, 1, 2]))
    // A fresh registry on the same directory sees the same state.
    let other = try RegistryFixture.registry(reg.directory)
    #expect(try other.resolve("x") == reg.resolve("x"))
    #expect(other.list().first?.versions == [0, 1, 2])
  }

  @Test func badNamesUnknownAdaptersAndVersionsAreTypedErrors() throws {
    let reg = try RegistryFixture.registry(RegistryFixture.directory())
    try reg.create(name: "x", rank: 1, alpha: 1, targets: [.q], seed: 1)
    let learned = randomLoRA("l", RegistryFixture.config, rank: 1, alpha: 1, seed: 2)
    for bad in ["../evil", "a b", "", ".hidden", "..", "-rf", "x/y", "é", "n.gguf", String(repeating: "a", count: 101)]
    {
      #expect(
        isBadName(registryError { try reg.create(name: bad, rank: 1, alpha: 1, targets: [.q], seed: 1) }), "\(bad)")
    }
    for bad in ["..", ".hidden", "x@", "x@1a", "x@-1", "a b", "x@@1"] {
      #expect(isBadName(registryError { _ = try reg.resolve(bad) }), "\(bad)")
    }
    #expect(isBadName(registryError { try reg.publish(name: "../x", weights: learned) }))
    #expect(isBadName(registryError { try reg.setCurrent(name: "..", version: 0) }))

    let unknown = registryError { _ = try reg.resolve("nope") }
    #expect(unknown == .unknownAdapter(name: "nope", directory: reg.directory, known: ["x"]))
    #expect(unknown?.description.contains(reg.directory) == true)
    #expect(registryError { try reg.publish(name: "nope", weights: learned) } != nil)
    #expect(registryError { _ = try reg.resolve("x@3") } == .unknownVersion(name: "x", version: 3, available: [0]))
    #expect(registryError { _ = try reg.acquire("x@3") } == .unknownVersion(name: "x", version: 3, available: [0]))
    #expect(registryError { try reg.create(name: "x", rank: 1, alpha: 1, targets: [.q], seed: 1) } != nil)
    #expect(registryError { try reg.create(name: "y", rank: 0, alpha: 1, targets: [.q], seed: 1) } != nil)
    #expect(registryError { try reg.create(name: "y", rank: 1, alpha: 1, targets: [], seed: 1) } != nil)

    // Weights that do not fit the base are not published.
    let wrong = LoRAWeights(
      name: "w",
      pairs: [
        LoRATarget(layer: 0, module: .q): LoRAPair(rank: 1, rows: 3, cols: 2, scale: 1, a: [1, 1], b: [1, 1, 1])
      ])
    if case .badWeights = registryError({ try reg.publish(name: "x", weights: wrong) }) {
    } else {
      Issue.record("a misfit adapter must be refused")
    }
    // A broken current pointer is reported, not guessed around.
    try "seven\n".write(toFile: reg.directory + "/x/current", atomically: true, encoding: .utf8)
    reg.rescan()
    if case .badCurrent = registryError({ _ = try reg.resolve("x") }) {} else { Issue.record("bad current accepted") }
    #expect(try reg.resolve("x@0").version == 0)
    #expect(reg.list().first?.problem != nil)
  }

  /// A PEFT directory or a GGUF LoRA outside the adapters directory is loaded by path.
  @Test func plainPathsLoadAsThemselves() throws {
    let reg = try RegistryFixture.registry(RegistryFixture.directory())
    let w = randomLoRA("p", RegistryFixture.config, rank: 2, alpha: 2, seed: 4)
    let peft = TinyModel.temporaryPath("outside-peft")
    try PEFTAdapter.write(w, to: peft)
    let gguf = TinyModel.temporaryPath("outside.gguf")
    try GGUFLoRA.write(w, architecture: RegistryFixture.config.architecture, to: gguf)
    let a = try reg.acquire(peft)
    let b = try reg.acquire(gguf)
    #expect(a.ref.kind == .path && a.ref.path == peft && a.version == 0)
    #expect(
      b.ref.kind == .path && b.name == (gguf as NSString).lastPathComponent.replacingOccurrences(of: ".gguf", with: ""))
    #expect(a.adapter.weights.pairs.count == w.pairs.count && b.adapter.weights.pairs.count == w.pairs.count)
    #expect(throws: AdapterError.missingFile(path: "./no/such/dir")) { try reg.resolve("./no/such/dir") }
  }

  @Test func memorySizesAndModuleLists() throws {
    #expect(try MemorySize.parse("256MB") == 256 << 20)
    #expect(try MemorySize.parse("1.5G") == 3 << 29)
    #expect(try MemorySize.parse("4096") == 4096)
    #expect(try MemorySize.parse("64 KiB") == 64 << 10)
    for bad in ["", "0", "-5MB", "lots", "12XB"] {
      #expect(registryError { _ = try MemorySize.parse(bad) } != nil, "\(bad)")
    }
    #expect(MemorySize.format(512) == "512 B" && MemorySize.format(256 << 20) == "256 MB")
    #expect(try LoRAModule.parseList("v,q") == [.q, .v])
    #expect(try LoRAModule.parseList("all") == LoRAModule.allCases)
    #expect(try LoRAModule.parseList("gate_proj,down") == [.gate, .down])
    #expect(registryError { _ = try LoRAModule.parseList("q,x") } != nil)
  }
}
