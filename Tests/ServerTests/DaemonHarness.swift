import Adapters
import Foundation
import Model
import Server
import TestSupport

#if canImport(Glibc)
  import Glibc
#endif

/// The real `lorad serve` binary, started on a free TCP port and a Unix socket over the tiny
/// model and a directory of random adapters, for the end-to-end tests.
final class DaemonProcess: @unchecked Sendable {  // stderrText under logLock; the rest set in init
  let process = Process()
  let port: Int
  let socketPath: String
  let modelPath: String
  let adaptersDir: String
  private let stderrPipe = Pipe()
  private let logLock = NSLock()
  private var stderrText = ""

  /// The `lorad` binary built beside the test bundle.
  static var binary: String {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for dir in [here, here.deletingLastPathComponent()] {
      let p = dir.appendingPathComponent("lorad").path
      if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return ".build/debug/lorad"
  }

  /// Writes the tiny model (ctx 256) and `adapters` random rank-4 adapters (a0, a1, …).
  static func fixture(adapters: Int) throws -> (model: String, adapters: String) {
    let model = TinyModel.temporaryPath("daemon.gguf")
    try TinyModel.write(to: model, shape: TinyModel.Shape(), seed: 11)
    let dir = TinyModel.temporaryPath("adapters")
    let config = try LlamaModel(path: model).config
    let reg = try AdapterRegistry(directory: dir, config: config, memoryBudget: 64 << 20)
    for i in 0..<adapters {
      _ = try reg.create(name: "a\(i)", rank: 4, alpha: 8, targets: LoRAModule.allCases, seed: UInt64(i))
      _ = try reg.publish(
        name: "a\(i)",
        weights: LoRAWeights.random(name: "a\(i)", config: config, rank: 4, alpha: 8, bScale: 0.5, seed: 50 + UInt64(i))
      )
    }
    return (model, dir)
  }

  let stateDir: String

  init(adapters: Int = 0, extra: [String] = [], model: String? = nil, state: String? = nil) throws {
    let f = try Self.fixture(adapters: adapters)
    stateDir = state ?? TinyModel.temporaryPath("state")
    modelPath = model ?? f.model
    adaptersDir = f.adapters
    socketPath = TinyModel.temporaryPath("d.sock")
    process.executableURL = URL(fileURLWithPath: Self.binary)
    process.arguments =
      [
        "serve", "--model", modelPath, "--listen", "127.0.0.1:0", "--socket", socketPath, "--adapters", adaptersDir,
        "--state", stateDir, "--ctx", "256", "--threads", "2", "--grace", "5",
      ] + extra
    process.standardError = stderrPipe
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    // The first stderr line says where it listens: "lorad: serving on tcp 127.0.0.1:PORT, …".
    var found: Int?
    let deadline = Date(timeIntervalSinceNow: 60)
    let handle = stderrPipe.fileHandleForReading
    var text = ""
    while found == nil && Date() < deadline && process.isRunning {
      let d = handle.availableData
      if d.isEmpty { break }
      text += String(decoding: d, as: UTF8.self)
      if let r = text.range(of: #"tcp 127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
        found = Int(text[r].split(separator: ":").last!)
      }
    }
    stderrText = text
    guard let p = found else {
      process.terminate()
      throw HarnessError.didNotStart(text)
    }
    port = p
    // Keep draining stderr so the daemon never blocks on a full pipe.
    handle.readabilityHandler = { [weak self] h in
      let d = h.availableData
      guard let self, !d.isEmpty else { return }
      self.logLock.withLock { self.stderrText += String(decoding: d, as: UTF8.self) }
    }
  }

  enum HarnessError: Error { case didNotStart(String) }

  var log: String { logLock.withLock { stderrText } }

  func client(timeout: Int = 30) throws -> TestClient {
    let c = try TestClient(tcpPort: port)
    c.timeout = timeout
    return c
  }

  /// The daemon's resident memory (VmRSS) in bytes.
  var residentBytes: Int {
    guard let s = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
      let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
  }

  /// SIGKILL: no chance to flush or close anything.
  func kill9() {
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
  }

  /// Sends SIGTERM and waits for the exit; returns the exit status.
  func terminate(timeout: Double = 30) -> Int32 {
    kill(process.processIdentifier, SIGTERM)
    let deadline = Date(timeIntervalSinceNow: timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
      kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
      return -1
    }
    return process.terminationStatus
  }

  deinit {
    if process.isRunning {
      kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
    }
    stderrPipe.fileHandleForReading.readabilityHandler = nil
  }
}

/// One generation's replies as a client saw them.
struct Generation {
  var start: JSONObject?
  var tokens: [String] = []
  var done: JSONObject?
  var error: JSONObject?

  var text: String? { done.flatMap { if case .string(let s)? = $0["text"] { return s } else { return nil } } }
  var finish: String? { done.flatMap { if case .string(let s)? = $0["finish"] { return s } else { return nil } } }
  var request: String? { done.flatMap { if case .string(let s)? = $0["request"] { return s } else { return nil } } }
  var errorCode: String? { error.flatMap { if case .string(let s)? = $0["code"] { return s } else { return nil } } }
}

extension TestClient {
  /// Reads replies until every id in `ids` has its `done` or `error`.
  func collect(_ ids: Set<String>) -> [String: Generation] {
    var out: [String: Generation] = [:]
    var open = ids
    while !open.isEmpty, let r = readReply() {
      guard case .string(let id)? = r["id"] else { continue }
      var g = out[id] ?? Generation()
      switch r["event"] {
      case .string("start")?: g.start = r
      case .string("token")?: if case .string(let t)? = r["text"] { g.tokens.append(t) }
      case .string("done")?:
        g.done = r
        open.remove(id)
      case .string("error")?:
        g.error = r
        open.remove(id)
      default: break
      }
      out[id] = g
    }
    return out
  }

  func generate(_ id: String, _ fields: String) -> Generation {
    send("{\"op\":\"generate\",\"id\":\"\(id)\",\(fields)}\n")
    return collect([id])[id] ?? Generation()
  }
}
