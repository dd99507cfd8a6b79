import Foundation
import Model
import TestSupport
import Testing

@testable import Adapters

@Suite struct RegistryRescanTests {
  /// rescan notices a new adapter, a replaced file (dropping the stale copy while its lease
  /// keeps the old weights), a moved current pointer and a deleted adapter.
  @Test func rescanSeesNewChangedAndDeletedAdapters() throws {
    let dir = RegistryFixture.directory()
    let reg = try RegistryFixture.registry(dir)
    let outside = try RegistryFixture.registry(dir)  // another process, as far as `reg` knows
    try reg.create(name: "a", rank: 2, alpha: 2, targets: [.q, .v], seed: 1)
    #expect(reg.rescan().isEmpty)

    // A new adapter directory.
    try outside.create(name: "b", rank: 1, alpha: 1, targets: [.k], seed: 2)
    var r = reg.rescan()
    #expect(r.added == ["b"] && r.removed.isEmpty && r.changed.isEmpty && r.dropped.isEmpty)
    #expect(try reg.resolve("b").version == 0)

    // A changed file: a's weights replaced in place while a sequence holds the old copy.
    let old = try reg.acquire("a")
    let bytes = reg.residentBytes
    let replacement = randomLoRA("a", RegistryFixture.config, rank: 2, alpha: 2, seed: 9)
    try PEFTAdapter.write(replacement, to: dir + "/a")
    r = reg.rescan()
    #expect(r.changed == ["a"] && r.dropped == ["a@0"] && r.added.isEmpty && r.removed.isEmpty)
    #expect(!reg.isResident(try reg.resolve("a")))
    #expect(reg.residentBytes == bytes, "the stale copy still counts while leased")
    let loads = reg.stats.loads
    let new = try reg.acquire("a")
    #expect(reg.stats.loads == loads + 1)
    #expect(new.adapter !== old.adapter)
    for (t, p) in RegistryFixture.served(replacement, reg).pairs {
      #expect(new.adapter.weights.pairs[t]!.b == p.b)
      #expect(old.adapter.weights.pairs[t]?.b.allSatisfy { $0 == 0 } ?? true)
    }
    old.release()
    #expect(reg.residentBytes == new.adapter.bytes, "the stale copy is freed with its last lease")
    #expect(reg.rescan().isEmpty)

    // The current pointer moved by someone else.
    let v = try outside.publish(name: "a", weights: replacement)
    #expect(try reg.resolve("a").version == 0)  // not seen until rescan
    r = reg.rescan()
    #expect(r.changed == ["a"] && r.dropped.isEmpty)  // version 0's files did not change
    #expect(try reg.resolve("a").version == v)

    // A deleted adapter.
    try FileManager.default.removeItem(atPath: dir + "/b")
    r = reg.rescan()
    #expect(r.removed == ["b"] && r.added.isEmpty)
    #expect(
      registryError { _ = try reg.resolve("b") } == .unknownAdapter(name: "b", directory: reg.directory, known: ["a"]))

    // A deleted version that is resident is dropped.
    let v1 = try reg.acquire("a@\(v)")
    v1.release()
    try FileManager.default.removeItem(atPath: dir + "/a/versions/\(v)")
    r = reg.rescan()
    #expect(r.dropped == ["a@\(v)"])
    if case .badCurrent = registryError({ _ = try reg.resolve("a") }) {
    } else {
      Issue.record("dangling current accepted")
    }
    try reg.setCurrent(name: "a", version: 0)
    #expect(try reg.resolve("a").version == 0)
    new.release()
  }

  /// An adapter loaded by path is checked against its file too, and a name the registry has
  /// not scanned yet is found on first use.
  @Test func pathAdaptersAndUnscannedNames() throws {
    let dir = RegistryFixture.directory()
    let reg = try RegistryFixture.registry(dir)
    let gguf = TinyModel.temporaryPath("path.gguf")
    let w = randomLoRA("p", RegistryFixture.config, rank: 2, alpha: 2, seed: 5)
    try GGUFLoRA.write(w, architecture: RegistryFixture.config.architecture, to: gguf)
    try reg.acquire(gguf).release()
    #expect(reg.rescan().isEmpty)
    try GGUFLoRA.write(
      randomLoRA("p", RegistryFixture.config, rank: 2, alpha: 2, seed: 6),
      architecture: RegistryFixture.config.architecture,
      to: gguf)
    #expect(reg.rescan().dropped == [URL(fileURLWithPath: gguf).standardizedFileURL.path])

    try RegistryFixture.registry(dir).create(name: "late", rank: 1, alpha: 1, targets: [.o], seed: 3)
    #expect(try reg.acquire("late").version == 0)  // no rescan needed to find it
  }
}
