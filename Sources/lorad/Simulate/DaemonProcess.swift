import Foundation
import Server

#if canImport(Glibc)
  import Glibc
#endif

/// A `lorad serve` child process of this binary on a Unix socket in a work directory, for
/// `lorad simulate` when no `--connect` is given. Its stderr goes to WORK/serve.log.
final class DaemonProcess {
  let process: Process
  let socketPath: String
  let logPath: String

  /// Starts `lorad serve --listen none --socket WORK/lorad.sock --adapters ADAPTERS --state
  /// WORK/state` plus `extra`, and waits until the socket accepts a connection.
  init(work: String, adapters: String, model: String, threads: Int, extra: [String], timeout: Double = 120) throws {
    socketPath = work + "/lorad.sock"
    logPath = work + "/serve.log"
    guard FileManager.default.createFile(atPath: logPath, contents: nil),
      let log = FileHandle(forWritingAtPath: logPath)
    else {
      throw SimulateError.daemon("cannot write \(logPath)")
    }
    process = Process()
    process.executableURL = URL(fileURLWithPath: Self.selfExecutable())
    process.arguments =
      [
        "serve", "--listen", "none", "--socket", socketPath, "--adapters", adapters, "--state", work + "/state",
        "--model", model, "--threads", String(threads),
      ] + extra
    process.standardOutput = log
    process.standardError = log
    do { try process.run() } catch {
      throw SimulateError.daemon("cannot start \(process.executableURL!.path) serve: \(error)")
    }
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      if let c = try? LineClient(connect: socketPath) {
        c.close()
        return
      }
      guard process.isRunning else {
        throw SimulateError.daemon("lorad serve exited with status \(process.terminationStatus): \(tail())")
      }
      guard Date() < deadline else {
        stop()
        throw SimulateError.daemon("lorad serve did not listen on \(socketPath) within \(Int(timeout)) s: \(tail())")
      }
      usleep(100_000)
    }
  }

  /// SIGTERM, then waits for the exit.
  func stop() {
    guard process.isRunning else { return }
    process.terminate()
    process.waitUntilExit()
  }

  /// The last lines of the daemon's log.
  func tail(lines: Int = 8) -> String {
    let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
  }

  /// This binary's path (/proc/self/exe resolved, else argv[0]).
  static func selfExecutable() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    if n > 0 { return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    return CommandLine.arguments[0]
  }
}

/// Why `lorad simulate` stopped.
enum SimulateError: Error, CustomStringConvertible {
  case daemon(String)
  case protocolError(String)
  case input(String)

  var description: String {
    switch self {
    case .daemon(let m): return "the daemon: \(m)"
    case .protocolError(let m): return "the daemon's reply: \(m)"
    case .input(let m): return m
    }
  }
}
