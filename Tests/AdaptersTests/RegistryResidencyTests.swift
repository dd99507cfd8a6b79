import Foundation
import Model
import TestSupport
import Testing

@testable import Adapters

@Suite struct RegistryResidencyTests {
  /// 100 adapters under a budget of 10: least recently used evicted first, never a leased one,
  /// resident bytes never over the budget, an evicted adapter reloads on its next use.
  @Test func lruEvictionUnderABudgetOfTen() throws {
    let dir = RegistryFixture.directory()
    let maker = try RegistryFixture.registry(dir)
    let names = (0..<100).map { String(format: "a%02d", $0) }
    // Two made by `create`, the other 98 copies of the first (copying skips the fsyncs of 98
    // crash-safe writes and keeps the test fast).
    try maker.create(name: "a00", rank: 1, alpha: 1, targets: [.q], seed: 0)
    try maker.create(name: "a01", rank: 1, alpha: 1, targets: [.q], seed: 1)
    for n in names[2...] { try FileManager.default.copyItem(atPath: dir + "/a00", toPath: dir + "/" + n) }
    let one = ResidentAdapter(
      AdapterRegistry.freshWeights(
        name: "x", config: RegistryFixture.config, rank: 1, alpha: 1, targets: [.q], seed: 0),
      layers: RegistryFixture.config.layers)
    let budget = 10 * one.bytes
    let reg = try RegistryFixture.registry(dir, budget: budget)
    #expect(reg.list().count == 100)

    func use(_ n: String) throws {
      try reg.acquire(n).release()
      #expect(reg.residentBytes <= budget)
    }
    func resident() -> [String] { reg.residentRefs().map(\.name) }

    let held = try reg.acquire("a00")  // leased throughout: must never be evicted
    for n in names[1..<10] { try use(n) }
    #expect(resident() == Array(names[0..<10]))
    #expect(reg.residentBytes == budget && reg.stats.evictions == 0)

    try use("a10")  // evicts a01, the least recently used unleased one (a00 is leased)
    #expect(resident() == ["a00"] + names[2...10])
    try use("a02")  // a02 becomes the most recent, so a03 goes next, not a02
    try use("a11")
    #expect(!resident().contains("a03") && resident().contains("a02") && resident().contains("a00"))

    for n in names[12...] {
      try use(n)
      #expect(resident().contains("a00"))
    }
    #expect(resident().count == 10 && resident().last == "a99")
    #expect(reg.stats.evictions == 90)  // a10, a11, then one for each of a12…a99

    // An evicted adapter reloads from disk on its next use, with its own weights.
    let loads = reg.stats.loads
    let again = try reg.acquire("a01")
    #expect(reg.stats.loads == loads + 1)
    let fresh = AdapterRegistry.freshWeights(
      name: "a01", config: RegistryFixture.config, rank: 1, alpha: 1, targets: [.q], seed: 1)
    let served = ResidentAdapter(fresh, layers: RegistryFixture.config.layers, type: reg.residentType).weights
    #expect(again.adapter.weights.pairs.keys.allSatisfy { again.adapter.weights.pairs[$0]!.a == served.pairs[$0]!.a })
    again.release()
    try use("a01")
    #expect(reg.stats.loads == loads + 1, "a resident adapter is not read again")
    held.release()

    // When every resident copy is leased there is no room: the caller hears so, and the budget holds.
    let leases = try names[20..<30].map { try reg.acquire($0) }
    #expect(reg.residentBytes == budget)
    let full = registryError { _ = try reg.acquire("a30") }
    #expect(full == .budgetExhausted(adapter: "a30@0", bytes: one.bytes, leasedBytes: budget, budget: budget))
    leases[3].release()
    try use("a30")
    #expect(!resident().contains("a23") && resident().contains("a22"))
    leases.forEach { $0.release() }
    #expect(reg.stats.leases == 0)

    // One adapter larger than the whole budget.
    let tiny = try RegistryFixture.registry(dir, budget: one.bytes - 1)
    #expect(
      registryError { _ = try tiny.acquire("a00") }
        == .budgetTooSmall(adapter: "a00@0", bytes: one.bytes, budget: one.bytes - 1))
  }

  /// Two threads acquiring and releasing 20 adapters under a budget of 5 never pass the budget
  /// and never lose a lease.
  @Test func concurrentAcquiresStayUnderBudget() throws {
    let dir = RegistryFixture.directory()
    let maker = try RegistryFixture.registry(dir)
    try maker.create(name: "c0", rank: 1, alpha: 1, targets: [.v], seed: 0)
    for i in 1..<20 { try FileManager.default.copyItem(atPath: dir + "/c0", toPath: dir + "/c\(i)") }
    let probe = try maker.acquire("c0")
    let budget = 5 * probe.adapter.bytes
    let reg = try RegistryFixture.registry(dir, budget: budget)
    let over = Counter()
    DispatchQueue.concurrentPerform(iterations: 2) { t in
      var rng = Xoshiro256(seed: UInt64(t))
      for _ in 0..<200 {
        let n = "c\(rng.next() % 20)"
        guard let lease = try? reg.acquire(n) else { continue }  // budgetExhausted is allowed
        if reg.residentBytes > budget || lease.name != n { over.add() }
        lease.release()
      }
    }
    #expect(over.value == 0)
    #expect(reg.stats.leases == 0 && reg.residentBytes <= budget)
  }
}

/// A thread-safe tally for the concurrency test.
final class Counter: @unchecked Sendable {  // `n` under `lock`
  private let lock = NSLock()
  private var n = 0
  func add() { lock.withLock { n += 1 } }
  var value: Int { lock.withLock { n } }
}
