import Foundation
import Server
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A running server with a trivial handler: `generate` streams its prompt back word by word,
/// `stats` floods `stats_lines` lines of `stats_bytes` bytes (to play a fast producer), every
/// other op answers `ok` with its op name.
final class EchoServer {
  let server: LineServer
  let directory: String
  var socketPath: String { directory + "/lorad.sock" }

  init(_ tweak: (inout ServerConfiguration) -> Void = { _ in }) throws {
    directory = NSTemporaryDirectory() + "lorad-server-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var config = ServerConfiguration()
    config.listen = "127.0.0.1:0"
    config.socketPath = directory + "/lorad.sock"
    config.idleTimeoutMilliseconds = 10_000
    tweak(&config)
    server = LineServer(configuration: config) { request, connection in
      switch request {
      case .generate(let g):
        guard case .prompt(let prompt) = g.input else {
          connection.send(.error(id: g.id, code: .internal, message: "echo handles prompts only"))
          return
        }
        let words = prompt.split(separator: " ").map(String.init)
        connection.send(.start(id: g.id, request: "r-\(g.id)", adapter: g.adapters.first?.name, version: nil))
        if g.stream { for w in words { connection.send(.token(id: g.id, text: w)) } }
        connection.send(
          .done(
            id: g.id, request: "r-\(g.id)", text: words.joined(separator: " "), finish: .stop,
            usage: Usage(promptTokens: words.count, completionTokens: words.count)))
      case .stats(let id):
        let filler = JSONValue.string(String(repeating: "x", count: 4096))
        for _ in 0..<2_000 { connection.send(.ok(id: id, fields: ["filler": filler])) }
      default:
        connection.send(.ok(id: request.id, fields: ["op": .string(request.op)]))
      }
    }
    try server.start()
  }

  var port: Int { server.tcpPort! }

  func shutdown() {
    server.stop()
    server.wait()
    try? FileManager.default.removeItem(atPath: directory)
  }

  /// Waits (up to 3 s) until `condition` holds of the counters.
  func waitFor(_ condition: (ServerCounters) -> Bool) -> Bool {
    for _ in 0..<300 {
      if condition(server.counters) { return true }
      usleep(10_000)
    }
    return condition(server.counters)
  }
}

@Suite struct ServerEndToEndTests {
  @Test func pipelinedRequestsOverTCPAndUnixSocket() throws {
    let s = try EchoServer()
    defer { s.shutdown() }
    #expect(s.port > 0)
    var st = stat()
    #expect(lstat(s.socketPath, &st) == 0 && st.st_mode & 0o777 == 0o660)
    let tcp = try TestClient(tcpPort: s.port)
    let unix = try TestClient(unixPath: s.socketPath)
    for client in [tcp, unix] {
      client.send(
        #"{"op":"generate","id":"a","prompt":"hello big world","adapter":"x"}"# + "\n"
          + #"{"op":"generate","id":"b","prompt":"quiet","stream":false}"# + "\r\n\n"
          + #"{"op":"feedback","id":"f","request":"r-a","rating":"up"}"# + "\n")
      #expect(client.readLine() == #"{"id":"a","event":"start","request":"r-a","adapter":"x","version":null}"#)
      for w in ["hello", "big", "world"] {
        #expect(client.readLine() == #"{"id":"a","event":"token","text":""# + w + #""}"#)
      }
      #expect(
        client.readLine()
          == #"{"id":"a","event":"done","request":"r-a","text":"hello big world","finish":"stop","usage":{"prompt_tokens":3,"completion_tokens":3}}"#
      )
      #expect(client.readReply()?["event"] == .string("start"))
      #expect(client.readReply()?["event"] == .string("done"))
      #expect(client.readLine() == #"{"id":"f","event":"ok","op":"feedback"}"#)
    }
    #expect(s.server.counters.open == 2)
  }

  @Test func badLinesAreAnsweredAndTheConnectionStaysUsable() throws {
    let s = try EchoServer()
    defer { s.shutdown() }
    let c = try TestClient(tcpPort: s.port)
    c.send([0xFF, 0xFE, 0x7B, 0x0A])
    c.send("not json\n")
    c.send(String(repeating: "[", count: 5_000) + "\n")
    c.send(#"{"op":"launch","id":"u"}"# + "\n")
    c.send(#"{"op":"generate","id":"m","prompt":"p","max_tokens":-3}"# + "\n")
    c.send(#"{"op":"cancel","id":"ok1","target":"a"}"# + "\n")
    let replies = (0..<6).compactMap { _ in c.readReply() }
    #expect(replies.count == 6)
    guard replies.count == 6 else { return }
    #expect(replies[0]["code"] == .string("bad_request") && replies[0]["id"] == .null)
    #expect(replies[1]["code"] == .string("bad_request"))
    #expect(replies[2]["message"] == .string("JSON nests deeper than 32 levels"))
    #expect(replies[3]["code"] == .string("unknown_op") && replies[3]["id"] == .string("u"))
    #expect(replies[4]["code"] == .string("bad_request") && replies[4]["id"] == .string("m"))
    #expect(replies[5]["event"] == .string("ok"))
    #expect(s.server.counters.errorReplies == 5)
  }

  @Test func overLongLineGetsTooLargeAndCloses() throws {
    let s = try EchoServer { $0.maxLineBytes = 1_024 }
    defer { s.shutdown() }
    // Exactly the limit is fine.
    let fine = try TestClient(tcpPort: s.port)
    let head = #"{"op":"adapters","id":"a","pad":""#
    let body = head + String(repeating: "y", count: 1_024 - head.utf8.count - 2) + #""}"#
    #expect(body.utf8.count == 1_024)
    fine.send(body + "\n")
    #expect(fine.readReply()?["event"] == .string("ok"))
    // Over the limit, complete in one write, and never ending (split over writes).
    for newline in [true, false] {
      let c = try TestClient(unixPath: s.socketPath)
      c.send(#"{"op":"adapters","id":"a"}"# + "\n")
      let long = String(repeating: "z", count: 600)
      c.send(long)
      c.send(long + (newline ? "\n" : ""))
      #expect(c.readReply()?["event"] == .string("ok"))
      let e = c.readReply()
      #expect(e?["code"] == .string("too_large") && e?["id"] == .null)
      #expect(c.readsEOF())
    }
    #expect(s.server.counters.tooLarge == 2)
  }

  @Test func clientThatNeverReadsIsClosedPastTheHardBound() throws {
    let s = try EchoServer {
      $0.softOutputBytes = 64 << 10
      $0.hardOutputBytes = 256 << 10
    }
    defer { s.shutdown() }
    let c = try TestClient(unixPath: s.socketPath)
    c.send(#"{"op":"stats","id":"flood"}"# + "\n")  // ~8 MB of replies that are never read
    #expect(s.waitFor { $0.slowReaderClosed == 1 && $0.open == 0 })
    let line = 4_096 + 64
    #expect(s.server.counters.peakQueuedBytes <= (256 << 10) + line)
    #expect(c.readsEOF())
  }

  @Test func readingPausesPastTheSoftBoundAndResumes() throws {
    let s = try EchoServer {
      $0.softOutputBytes = 16 << 10
      $0.hardOutputBytes = 64 << 20
    }
    defer { s.shutdown() }
    let c = try TestClient(unixPath: s.socketPath)
    let prompt = String(repeating: "w ", count: 200)
    let n = 400
    var lines = ""
    for k in 0..<n { lines += #"{"op":"generate","id":"g\#(k)","prompt":"\#(prompt)"}"# + "\n" }
    c.send(lines)  // ~400 KB in, ~12 MB out; the server must stop reading while we do not read
    #expect(s.waitFor { $0.paused >= 1 })
    var done = 0
    while let r = c.readReply() {
      if r["event"] == .string("done") { done += 1 }
      if done == n { break }
    }
    #expect(done == n)
    #expect(s.server.counters.slowReaderClosed == 0)
  }

  @Test func idleConnectionsAreClosed() throws {
    let s = try EchoServer { $0.idleTimeoutMilliseconds = 150 }
    defer { s.shutdown() }
    let c = try TestClient(tcpPort: s.port)
    let t0 = Date()
    #expect(c.readsEOF())
    #expect(Date().timeIntervalSince(t0) < 2)
    #expect(s.waitFor { $0.idleClosed == 1 })
  }

  /// A connection waiting for a slow reply (a `learn` with `wait`, say) sends and receives
  /// nothing for longer than the idle timeout, yet is not idle: it gets its reply, and only then,
  /// one timeout of silence later, is closed.
  @Test func aConnectionAwaitingAReplyIsNotIdle() throws {
    let directory = NSTemporaryDirectory() + "lorad-server-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var config = ServerConfiguration()
    config.listen = "127.0.0.1:0"
    config.idleTimeoutMilliseconds = 150
    final class Pending: @unchecked Sendable {  // under lock
      let lock = NSLock()
      var ids: Set<UInt64> = []
    }
    let pending = Pending()
    nonisolated(unsafe) var serverRef: LineServer?
    let server = LineServer(configuration: config) { request, connection in
      let id = connection.id
      pending.lock.withLock { _ = pending.ids.insert(id.rawValue) }
      DispatchQueue.global().asyncAfter(deadline: .now() + 0.6) {
        pending.lock.withLock { _ = pending.ids.remove(id.rawValue) }
        _ = serverRef?.send(.ok(id: request.id, fields: ["op": .string(request.op)]), to: id)
      }
    }
    serverRef = server
    server.isAwaitingReplies = { id in pending.lock.withLock { pending.ids.contains(id.rawValue) } }
    try server.start()
    defer {
      server.stop()
      server.wait()
    }
    let c = try TestClient(tcpPort: server.tcpPort!)
    c.send(#"{"op":"adapters","id":"slow"}"# + "\n")
    let reply = c.readReply()
    #expect(reply?["id"] == .string("slow"), "the reply arrives although 0.6 s passed in silence")
    #expect(server.counters.idleClosed == 0)
    let t0 = Date()
    #expect(c.readsEOF())
    #expect(Date().timeIntervalSince(t0) < 2)
    #expect(server.counters.idleClosed == 1)
  }

  @Test func connectionsPastTheMaximumGetOverloaded() throws {
    let s = try EchoServer { $0.maxConnections = 2 }
    defer { s.shutdown() }
    let a = try TestClient(tcpPort: s.port)
    let b = try TestClient(unixPath: s.socketPath)
    for c in [a, b] {
      c.send(#"{"op":"stats","id":"s","x":1}"#.replacingOccurrences(of: "stats", with: "adapters") + "\n")
      #expect(c.readReply()?["event"] == .string("ok"))
    }
    let third = try TestClient(tcpPort: s.port)
    let e = third.readReply()
    #expect(e?["code"] == .string("overloaded"))
    #expect(third.readsEOF())
    #expect(s.waitFor { $0.rejected == 1 && $0.open == 2 })
    a.send(#"{"op":"adapters","id":"again"}"# + "\n")
    #expect(a.readReply()?["id"] == .string("again"))
  }

  @Test func otherThreadsSendThroughTheOutbox() throws {
    let box = ConnectionBox()
    let dir = NSTemporaryDirectory() + "lorad-outbox-\(UUID().uuidString.prefix(8))"
    var config = ServerConfiguration()
    config.listen = "127.0.0.1:0"
    let server = LineServer(configuration: config) { request, connection in
      box.set(connection.id, request.id)
    }
    try server.start()
    defer {
      server.stop()
      server.wait()
      try? FileManager.default.removeItem(atPath: dir)
    }
    let c = try TestClient(tcpPort: server.tcpPort!)
    c.send(#"{"op":"generate","id":"q","prompt":"p"}"# + "\n")
    var target: (ConnectionID, String)?
    for _ in 0..<300 where target == nil {
      target = box.get()
      usleep(10_000)
    }
    guard let (cid, rid) = target else {
      Issue.record("handler not called")
      return
    }
    let sender = Thread {
      for k in 0..<50 { server.send(.token(id: rid, text: "t\(k)"), to: cid) }
      server.send(
        .done(
          id: rid, request: "r-1", text: "", finish: .cancelled, usage: Usage(promptTokens: 1, completionTokens: 0)),
        to: cid)
      server.close(cid)
    }
    sender.start()
    for k in 0..<50 { #expect(c.readReply()?["text"] == .string("t\(k)")) }
    #expect(c.readReply()?["finish"] == .string("cancelled"))
    #expect(c.readsEOF())
  }

  @Test func staleSocketIsReplacedLiveOneAndFilesAreRefused() throws {
    let s = try EchoServer()
    // A live server holds the path.
    var config = ServerConfiguration()
    config.listen = nil
    config.socketPath = s.socketPath
    #expect(throws: ServerError.socketInUse(s.socketPath)) {
      try LineServer(configuration: config) { _, _ in }.start()
    }
    // Leave a stale socket file behind: bind without listening.
    let stale = s.directory + "/stale.sock"
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (k, b) in stale.utf8.enumerated() { raw[k] = b } }
    _ = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    Glibc.close(fd)
    config.socketPath = stale
    let second = LineServer(configuration: config) { r, c in c.send(.ok(id: r.id)) }
    try second.start()
    let c = try TestClient(unixPath: stale)
    c.send(#"{"op":"stats","id":"s2"}"# + "\n")
    #expect(c.readReply()?["id"] == .string("s2"))
    second.stop()
    second.wait()
    #expect(access(stale, F_OK) != 0)
    // A regular file is never removed.
    let file = s.directory + "/file"
    _ = FileManager.default.createFile(atPath: file, contents: Data("keep".utf8))
    config.socketPath = file
    #expect(throws: ServerError.notASocket(file)) { try LineServer(configuration: config) { _, _ in }.start() }
    #expect(access(file, F_OK) == 0)
    // A port in use is a UVError with libuv's text.
    config.socketPath = nil
    config.listen = "127.0.0.1:\(s.port)"
    do {
      try LineServer(configuration: config) { _, _ in }.start()
      Issue.record("bound a port in use")
    } catch let e as UVError {
      #expect(e.name == "EADDRINUSE" && e.description.contains("address already in use"))
    }
    #expect(throws: ServerError.badListenAddress("nonsense")) {
      config.listen = "nonsense"
      try LineServer(configuration: config) { _, _ in }.start()
    }
    s.shutdown()
    #expect(access(s.socketPath, F_OK) != 0)
  }
}

/// Hands the handler's connection id to the test thread.
final class ConnectionBox: @unchecked Sendable {  // guarded by lock
  private let lock = NSLock()
  private var value: (ConnectionID, String)?
  func set(_ id: ConnectionID, _ request: String) { lock.withLock { value = (id, request) } }
  func get() -> (ConnectionID, String)? { lock.withLock { value } }
}
