import Foundation
import Server
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Listening sockets the test opens and places at consecutive descriptors, as systemd would
/// from 3 on (here from a free number ≥ 600, since 3… belong to the test process).
struct PassedSockets {
  var first: Int32 = -1
  var count: Int32 = 0
  let directory = NSTemporaryDirectory() + "lorad-listenfds-\(UUID().uuidString.prefix(8))"
  var unixPath: String { directory + "/s.sock" }

  /// A listening TCP socket on 127.0.0.1 (a free port).
  static func tcpListener() -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    _ = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    listen(fd, 16)
    return fd
  }

  /// A Unix socket bound at `path`; listening unless told otherwise.
  static func unixSocket(_ path: String, listening: Bool = true) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (k, b) in path.utf8.enumerated() { raw[k] = b } }
    _ = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    if listening { listen(fd, 16) }
    return fd
  }

  /// Moves `fds` to consecutive free descriptors (without close-on-exec, as systemd passes them).
  init(_ make: (PassedSockets) -> [Int32]) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let fds = make(self)
    var base: Int32 = 600
    while (0..<Int32(fds.count)).contains(where: { fcntl(base + $0, F_GETFD) != -1 }) { base += 16 }
    for (k, fd) in fds.enumerated() {
      guard dup2(fd, base + Int32(k)) == base + Int32(k) else { throw POSIXError(.EBADF) }
      Glibc.close(fd)
    }
    first = base
    count = Int32(fds.count)
  }

  func environment(names: String? = nil) -> [String: String] {
    var env = ["LISTEN_PID": "\(getpid())", "LISTEN_FDS": "\(count)"]
    env["LISTEN_FDNAMES"] = names
    return env
  }

  /// Closes what nobody took over, and the directory.
  func cleanUp(closing: Bool) {
    if closing { for k in 0..<count { Glibc.close(first + k) } }
    try? FileManager.default.removeItem(atPath: directory)
  }
}

/// Serialized: the tests place sockets at descriptor numbers they find free, which must not
/// change under them.
@Suite(.serialized) struct ListenFDsTests {
  @Test func inheritedListenersAreServed() throws {
    let passed = try PassedSockets { [PassedSockets.tcpListener(), PassedSockets.unixSocket($0.unixPath)] }
    var owned = false
    defer { passed.cleanUp(closing: !owned) }
    #expect(fcntl(passed.first, F_GETFD) & FD_CLOEXEC == 0)
    let inherited = try ListenFDs.take(
      environment: passed.environment(names: "web:local"), firstFD: passed.first, unsetEnvironment: false)
    try #require(inherited.count == 2)
    #expect(inherited.map(\.name) == ["web", "local"])
    #expect(inherited.map(\.kind) == [.tcp, .unix])
    #expect(inherited.map(\.fd) == [passed.first, passed.first + 1])
    #expect(inherited[0].address.hasPrefix("127.0.0.1:"))
    #expect(inherited[1].address == passed.unixPath)
    for l in inherited { #expect(fcntl(l.fd, F_GETFD) & FD_CLOEXEC != 0) }

    var config = ServerConfiguration()
    config.listen = nil
    config.inheritedListeners = inherited
    let server = LineServer(configuration: config) { request, connection in
      connection.send(.ok(id: request.id, fields: ["op": .string(request.op)]))
    }
    try server.start()
    owned = true
    defer {
      server.stop()
      server.wait()
    }
    let port = try #require(server.tcpPort)
    #expect(inherited[0].address == "127.0.0.1:\(port)")
    for client in [try TestClient(tcpPort: port), try TestClient(unixPath: passed.unixPath)] {
      client.send(#"{"op":"stats","id":"s1"}"# + "\n")
      let reply = try #require(client.readReply())
      #expect(reply["id"] == .string("s1") && reply["event"] == .string("ok") && reply["op"] == .string("stats"))
    }
    #expect(server.counters.accepted == 2)
  }

  @Test func nothingPassedToThisProcess() throws {
    let pid = getpid()
    #expect(try ListenFDs.take(environment: [:], unsetEnvironment: false).isEmpty)
    #expect(try ListenFDs.take(environment: ["LISTEN_FDS": "1"], unsetEnvironment: false).isEmpty)
    let other = ["LISTEN_PID": "\(pid + 1)", "LISTEN_FDS": "1"]
    #expect(try ListenFDs.take(environment: other, unsetEnvironment: false).isEmpty)
    #expect(throws: ListenFDsError.badCount("two")) {
      try ListenFDs.take(environment: ["LISTEN_PID": "\(pid)", "LISTEN_FDS": "two"], unsetEnvironment: false)
    }
  }

  @Test func theVariablesAreRemovedFromTheEnvironment() throws {
    setenv("LISTEN_PID", "1", 1)
    setenv("LISTEN_FDS", "1", 1)
    setenv("LISTEN_FDNAMES", "x", 1)
    _ = try ListenFDs.take()  // LISTEN_PID names another process: nothing taken, all unset
    #expect(getenv("LISTEN_PID") == nil && getenv("LISTEN_FDS") == nil && getenv("LISTEN_FDNAMES") == nil)
  }

  @Test func namesAreDroppedWhenTheyDoNotMatchTheCount() throws {
    let passed = try PassedSockets { _ in [PassedSockets.tcpListener()] }
    defer { passed.cleanUp(closing: true) }
    let got = try ListenFDs.take(
      environment: passed.environment(names: "a:b"), firstFD: passed.first, unsetEnvironment: false)
    #expect(got.map(\.name) == ["unknown"])
  }

  @Test func aSocketThatDoesNotListenIsRefused() throws {
    let passed = try PassedSockets { [PassedSockets.unixSocket($0.unixPath, listening: false)] }
    defer { passed.cleanUp(closing: true) }
    #expect(throws: ListenFDsError.notAListeningStream(fd: passed.first, name: "s", "not a listening stream socket")) {
      try ListenFDs.take(environment: passed.environment(names: "s"), firstFD: passed.first, unsetEnvironment: false)
    }
  }

  @Test func aFileIsRefused() throws {
    let passed = try PassedSockets { _ in [open("/dev/null", O_RDONLY)] }
    defer { passed.cleanUp(closing: true) }
    #expect(throws: ListenFDsError.notAListeningStream(fd: passed.first, name: "unknown", "not a socket")) {
      try ListenFDs.take(environment: passed.environment(), firstFD: passed.first, unsetEnvironment: false)
    }
  }
}
