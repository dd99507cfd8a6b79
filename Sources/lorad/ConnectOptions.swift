import ArgumentParser
import Foundation
import Server

/// Where a client command finds the daemon, and the key it presents: shared by ask, feedback,
/// adapters --connect and loadtest.
struct ConnectOptions: ParsableArguments {
  static let defaultAddress = "127.0.0.1:7411"

  @Option(
    name: .long,
    help: ArgumentHelp(
      "The daemon: HOST:PORT, or a Unix socket path. Default: $LORAD_CONNECT, else \(ConnectOptions.defaultAddress).",
      valueName: "addr"))
  var connect: String?

  @Option(
    name: .customLong("auth-key"),
    help: ArgumentHelp(
      "API key, when the daemon runs with --keys. Default: $LORAD_AUTH_KEY (keeps the key out of `ps`).",
      valueName: "key"))
  var authKey: String?

  var address: String {
    if let connect { return connect }
    if let env = ProcessInfo.processInfo.environment["LORAD_CONNECT"], !env.isEmpty { return env }
    return Self.defaultAddress
  }

  var key: String? {
    if let authKey { return authKey }
    if let env = ProcessInfo.processInfo.environment["LORAD_AUTH_KEY"], !env.isEmpty { return env }
    return nil
  }

  /// Connects and, with a key, authenticates. On failure prints `error…` and exits 1.
  func open() throws -> LineClient {
    let client: LineClient
    do {
      client = try LineClient(connect: address)
    } catch {
      printError("error: cannot connect to \(address): \(Self.reason(error)); is `lorad serve` running there?")
      throw ExitCode.failure
    }
    if let key {
      try client.call(["op": .string("auth"), "id": .string("auth"), "key": .string(key)])
    }
    return client
  }

  static func reason(_ error: Error) -> String {
    (error as? SocketError)?.message ?? "\(error)"
  }
}

extension LineClient {
  /// Sends one request and returns its single reply (`ok`); an `error` reply is printed as
  /// `error (code): message` and exits 1.
  @discardableResult
  func call(_ request: JSONObject) throws -> JSONObject {
    let id = request["id"]
    try sendOrExit(request)
    while true {
      guard let reply = try readOrExit() else {
        printError("error: \(address) closed the connection before answering")
        throw ExitCode.failure
      }
      guard reply["id"] == id || reply["id"] == .null else { continue }
      try exitOnError(reply)
      return reply
    }
  }

  func sendOrExit(_ request: JSONObject) throws {
    do { try send(request) } catch {
      printError("error: \(ConnectOptions.reason(error))")
      throw ExitCode.failure
    }
  }

  func readOrExit() throws -> JSONObject? {
    do { return try readReply() } catch {
      printError("error: \(ConnectOptions.reason(error))")
      throw ExitCode.failure
    }
  }

  /// An `error` event: prints `error (code): message` and exits 1.
  func exitOnError(_ reply: JSONObject) throws {
    guard reply["event"] == .string("error") else { return }
    printError("error (\(reply.string("code") ?? "?")): \(reply.string("message") ?? "")")
    throw ExitCode.failure
  }
}

extension JSONObject {
  func string(_ key: String) -> String? {
    if case .string(let s)? = self[key] { return s }
    return nil
  }

  func int(_ key: String) -> Int? {
    switch self[key] {
    case .integer(let n)?: return Int(exactly: n)
    case .double(let d)?: return d.isFinite ? Int(d) : nil
    default: return nil
    }
  }
}
