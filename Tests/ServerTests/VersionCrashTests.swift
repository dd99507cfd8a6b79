import Adapters
import Foundation
import Model
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// kill -9 during a version write, repeated: a child (`lorad adapters publish-random NAME
/// --loop`) writes versions (weights, optimizer state, `current`) as fast as it can and is
/// killed at random moments; after each kill the adapter loads at a whole version, every
/// version directory on disk is whole, and the writes resume.
@Suite struct VersionCrashTests {
  @Test func killDuringVersionWritesLeavesWholeVersions() throws {
    let f = try DaemonProcess.fixture(adapters: 1)
    let config = try LlamaModel(path: f.model).config
    var rng = Xoshiro256(seed: 99)
    var seen = Set<Int>()
    var seenVersions = 0
    for round in 0..<12 {
      let p = Process()
      p.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
      p.arguments = [
        "adapters", "publish-random", "a0", "--loop", "--seed", "\(round * 1000)", "--adapters", f.adapters,
        "--model", f.model,
      ]
      p.standardOutput = FileHandle.nullDevice
      try p.run()
      usleep(UInt32(150_000 + Int(rng.nextUnit() * 350_000)))
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()

      // A fresh registry (a restarted daemon) loads the current version whole.
      let reg = try AdapterRegistry(directory: f.adapters, config: config, memoryBudget: 64 << 20)
      let ref = try reg.resolve("a0")
      let lease = try reg.acquire(ref)
      lease.release()
      seen.insert(ref.version)
      // Every version directory on disk is whole: its weights load, its side file is complete.
      let versions = try FileManager.default.contentsOfDirectory(atPath: f.adapters + "/a0/versions")
      for v in versions where !v.hasPrefix(".") && v != "1" {  // 1: the fixture's, without side files
        let dir = f.adapters + "/a0/versions/" + v
        _ = try LoRALoader.load(path: dir, config: config, name: "a0")
        seenVersions += 1
        let opt = try #require(FileManager.default.contents(atPath: dir + "/optimizer.bin"))
        #expect(opt.count == 1 << 16, "version \(v): optimizer.bin has \(opt.count) bytes")
      }
    }
    print("crash rounds: current versions seen \(seen.sorted()); \(seenVersions) whole version checks")
    #expect(seen.count >= 3, "the writer should have got through several versions: \(seen.sorted())")
  }
}
