import Foundation
import Server
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct LineClientTests {
  @Test func streamsRepliesOverTCPAndUnixSocket() throws {
    let s = try EchoServer()
    defer { s.shutdown() }
    for address in ["127.0.0.1:\(s.port)", "localhost:\(s.port)", s.socketPath] {
      let c = try LineClient(connect: address, timeoutSeconds: 3)
      try c.send([
        "op": .string("generate"), "id": .string("q1"), "prompt": .string("one two three"), "adapter": .string("x"),
      ])
      var events: [String] = []
      var tokens: [String] = []
      while let r = try c.readReply() {
        guard case .string(let e)? = r["event"] else { break }
        events.append(e)
        if case .string(let t)? = r["text"], e == "token" { tokens.append(t) }
        if e == "done" { break }
      }
      #expect(events == ["start", "token", "token", "token", "done"], "\(address)")
      #expect(tokens == ["one", "two", "three"])
      // An invalid request gets an error line and the connection stays usable.
      try c.send(bytes: Array("{\"op\":\"nope\",\"id\":\"x\"}\n".utf8))
      let err = try #require(try c.readReply())
      #expect(err["event"] == .string("error") && err["code"] == .string("unknown_op"))
      c.close()
    }
  }

  @Test func readsManyLargeLinesAndTheEnd() throws {
    let s = try EchoServer()
    defer { s.shutdown() }
    let c = try LineClient(connect: "127.0.0.1:\(s.port)", timeoutSeconds: 3)
    try c.send(["op": .string("stats"), "id": .string("s")])  // 2,000 lines of 4 KB each
    var n = 0
    while n < 2_000, let line = try c.readLine() {
      #expect(line.count > 4096)
      n += 1
    }
    #expect(n == 2_000)
    // A last line without '\n' before EOF is still a line; then nil.
    try c.send(bytes: Array("{\"op\":\"adapters\",\"id\":\"a\"}".utf8))
    try c.finishSending()
    let last = try #require(try c.readReply())
    #expect(last["op"] == .string("adapters"))
    #expect(try c.readLine() == nil)
  }

  @Test func connectionErrorsSayWhere() throws {
    // A port nothing listens on: bind one, close it, connect.
    let fd = PassedSockets.tcpListener()
    var addr = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    Glibc.close(fd)
    let port = UInt16(bigEndian: addr.sin_port)
    #expect(throws: SocketError("connect 127.0.0.1:\(port)", code: ECONNREFUSED)) {
      try LineClient(connect: "127.0.0.1:\(port)")
    }
    #expect(throws: SocketError.self) { try LineClient(connect: "/nonexistent/lorad.sock") }
    #expect(throws: SocketError.self) { try LineClient(connect: "no-port") }
    #expect(LineClient.isUnixAddress("/run/lorad/lorad.sock") && LineClient.isUnixAddress("@lorad"))
    #expect(!LineClient.isUnixAddress("127.0.0.1:7411") && !LineClient.isUnixAddress("[::1]:7411"))
  }

  @Test func timesOutWhenNoReplyComes() throws {
    let s = try EchoServer()
    defer { s.shutdown() }
    let c = try LineClient(connect: "127.0.0.1:\(s.port)", timeoutSeconds: 0.2)
    #expect(throws: SocketError.self) { try c.readLine() }
  }
}
