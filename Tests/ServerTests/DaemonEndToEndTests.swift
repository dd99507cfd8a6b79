import Foundation
import Learning
import Server
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The real daemon over real sockets: `lorad serve` on the tiny model, spoken to as a client would.
@Suite(.serialized) struct DaemonEndToEndTests {
  static func string(_ o: JSONObject?, _ k: String) -> String? {
    if case .string(let s)? = o?[k] { return s }
    return nil
  }

  /// Streaming events, `done` with the request id, and the greedy text `lorad generate --raw` gives.
  @Test func streamsAndMatchesGenerate() throws {
    let d = try DaemonProcess()
    let c = try d.client()
    let g = c.generate("q1", #""prompt":"the quick brown fox","max_tokens":20,"temperature":0"#)
    #expect(Self.string(g.start, "event") == "start")
    #expect(Self.string(g.start, "request")?.hasPrefix("r-") == true)
    #expect(g.request == Self.string(g.start, "request"))
    #expect(g.tokens.joined() == g.text, "token events add up to the done text")
    #expect(!g.tokens.isEmpty)
    // The same through `lorad generate --raw`.
    let p = Process()
    p.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
    p.arguments = [
      "generate", "--model", d.modelPath, "--raw", "--temperature", "0", "--max-tokens", "20", "--ctx", "256",
      "the quick brown fox",
    ]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    #expect(text == (g.text ?? "nil") + "\n")
    // Over the Unix socket too, non-streaming.
    let u = try TestClient(unixPath: d.socketPath)
    u.timeout = 30
    let g2 = u.generate("q2", #""prompt":"the quick brown fox","max_tokens":20,"temperature":0,"stream":false"#)
    #expect(g2.tokens.isEmpty)
    #expect(g2.text == g.text)
    #expect(d.terminate() == 0)
  }

  /// On the real model (skipped when it is missing): the daemon's greedy answer to a chat equals
  /// `lorad generate` (chat template) for the same prompt.
  @Test func realModelMatchesGenerate() throws {
    let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "../../models/SmolLM2-135M-Instruct.Q4_1.gguf"
    ).standardizedFileURL.path
    guard FileManager.default.fileExists(atPath: model) else { return }
    let d = try DaemonProcess(extra: ["--ctx", "512"], model: model)
    let c = try d.client(timeout: 120)
    let g = c.generate(
      "q", #""messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":24,"temperature":0"#)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: DaemonProcess.binary)
    p.arguments = [
      "generate", "--model", model, "--temperature", "0", "--max-tokens", "24", "--ctx", "512",
      "What is the capital of France?",
    ]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    #expect(g.text != nil && !(g.text ?? "").isEmpty)
    #expect(text == (g.text ?? "nil") + "\n")
    #expect(d.terminate() == 0)
  }

  /// 16 concurrent clients on 8 adapters get the greedy texts each gets alone.
  @Test func concurrentClientsMatchAlone() throws {
    let d = try DaemonProcess(adapters: 8)
    @Sendable func fields(_ i: Int) -> String {
      #""adapter":"a\#(i % 8)","prompt":"client \#(i) says hello to","max_tokens":24,"temperature":0"#
    }
    var alone: [String?] = []
    let c = try d.client()
    for i in 0..<16 { alone.append(c.generate("solo\(i)", fields(i)).text) }
    #expect(Set(alone.prefix(8)).count > 1, "the adapters must give different texts")
    let results = LockedArray(count: 16)
    DispatchQueue.concurrentPerform(iterations: 16) { i in
      guard let cl = try? d.client() else { return }
      results.set(i, cl.generate("q", fields(i)).text)
    }
    for i in 0..<16 {
      #expect(results.get(i) != nil)
      #expect(results.get(i) == alone[i], "client \(i)")
    }
    #expect(d.terminate() == 0)
  }

  @Test func cancelEndsAGeneration() throws {
    let d = try DaemonProcess()
    let c = try d.client()
    c.send(#"{"op":"generate","id":"long","prompt":"once","max_tokens":200,"temperature":1,"seed":1}"# + "\n")
    _ = c.readReply()  // start
    c.send(#"{"op":"cancel","id":"c1","target":"long"}"# + "\n")
    var done: JSONObject?
    var cancelReply: JSONObject?
    while done == nil || cancelReply == nil, let r = c.readReply() {
      if Self.string(r, "id") == "c1" { cancelReply = r }
      if Self.string(r, "id") == "long" && Self.string(r, "event") == "done" { done = r }
    }
    // Either the cancel arrived in time, or the generation had already ended (then: unknown_request).
    if Self.string(cancelReply, "event") == "ok" {
      #expect(Self.string(done, "finish") == "cancelled")
    } else {
      #expect(Self.string(cancelReply, "code") == "unknown_request")
    }
    c.send(#"{"op":"cancel","id":"c2","target":"nothing"}"# + "\n")
    #expect(Self.string(c.readReply(), "code") == "unknown_request")
    #expect(d.terminate() == 0)
  }

  /// Every kind of bad input gets its error line, and the same connection still generates.
  @Test func badInputIsAnsweredAndServingGoesOn() throws {
    let d = try DaemonProcess(adapters: 1)
    let c = try d.client()
    let cases: [([UInt8], String)] = [
      (Array("{not json\n".utf8), "bad_request"),
      ([0x7B, 0x22, 0x6F, 0x70, 0x22, 0x3A, 0x22, 0xFF, 0xFE, 0x22, 0x7D, 0x0A], "bad_request"),  // invalid UTF-8
      (Array((String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "\n").utf8), "bad_request"),
      (Array(#"{"op":"fly","id":"u"}"#.utf8) + [0x0A], "unknown_op"),
      (Array(#"{"op":"generate","id":"m"}"#.utf8) + [0x0A], "bad_request"),
      (Array(#"{"op":"generate","id":"t","prompt":5}"#.utf8) + [0x0A], "bad_request"),
      (Array(#"{"op":"generate","id":"r","prompt":"x","temperature":-1}"#.utf8) + [0x0A], "bad_request"),
      (Array(#"{"op":"generate","id":"r2","prompt":"x","max_tokens":0}"#.utf8) + [0x0A], "bad_request"),
      (Array(#"{"op":"generate","id":"a","prompt":"x","adapter":"nope"}"#.utf8) + [0x0A], "adapter_not_found"),
      (Array(#"{"op":"generate","id":"v","prompt":"x","adapter":"a0@7"}"#.utf8) + [0x0A], "adapter_not_found"),
      (
        Array(
          ("{\"op\":\"generate\",\"id\":\"o\",\"prompt\":\"" + String(repeating: "word ", count: 300) + "\"}\n").utf8),
        "context_overflow"
      ),
      (Array(#"{"op":"feedback","id":"f","request":"r-none","rating":"up"}"#.utf8) + [0x0A], "unknown_request"),
    ]
    for (line, code) in cases {
      c.send(line)
      let r = c.readReply()
      #expect(Self.string(r, "event") == "error", "\(String(decoding: line.prefix(60), as: UTF8.self))")
      #expect(
        Self.string(r, "code") == code, "\(String(decoding: line.prefix(60), as: UTF8.self)): \(String(describing: r))")
    }
    let g = c.generate("ok", #""prompt":"still here","max_tokens":5,"temperature":0,"adapter":"a0""#)
    #expect(g.done != nil)
    // Feedback on that request is accepted; a second rating replaces the first.
    c.send(#"{"op":"feedback","id":"f1","request":""# + (g.request ?? "") + #"","rating":"up"}"# + "\n")
    #expect(Self.string(c.readReply(), "event") == "ok")
    c.send(#"{"op":"feedback","id":"f2","request":""# + (g.request ?? "") + #"","rating":"down","note":"meh"}"# + "\n")
    #expect(Self.string(c.readReply(), "event") == "ok")
    // Over-long line: too_large, then the connection closes; the daemon goes on.
    let big = try d.client()
    big.send(Array(repeating: UInt8(ascii: "a"), count: (1 << 20) + 10) + [0x0A])
    #expect(Self.string(big.readReply(), "code") == "too_large")
    #expect(big.readsEOF())
    #expect(try d.client().generate("after", #""prompt":"x","max_tokens":3"#).done != nil)
    #expect(d.terminate() == 0)
  }

  /// A client that sends requests and never reads: the daemon stops reading it past the soft
  /// bound (or closes it past the hard one), its memory stays flat, and others are served.
  @Test func clientThatNeverReadsDoesNotGrowMemory() throws {
    let d = try DaemonProcess(extra: ["--output-buffer", "64KB"])
    let warm = try d.client()
    _ = warm.generate("w", #""prompt":"warm up","max_tokens":50"#)
    let before = d.residentBytes
    // Over the Unix socket (fixed, small kernel buffers); 64 streaming requests, never read.
    let hog = try TestClient(unixPath: d.socketPath)
    for i in 0..<64 {
      hog.send(#"{"op":"generate","id":"h\#(i)","prompt":"spam","max_tokens":240,"temperature":1,"seed":\#(i)}"# + "\n")
    }
    // Wait until the daemon has paused or dropped the hog (or 30 s pass).
    let watcher = try d.client()
    var conns = JSONObject()
    let deadline = Date(timeIntervalSinceNow: 30)
    while Date() < deadline {
      watcher.send(#"{"op":"stats","id":"s"}"# + "\n")
      if case .object(let c)? = watcher.readReply()?["connections"] { conns = c }
      if (conns["paused"] ?? .integer(0)) != .integer(0) || (conns["slow_reader_closed"] ?? .integer(0)) != .integer(0)
      {
        break
      }
      usleep(50_000)
    }
    #expect(
      (conns["paused"] ?? .integer(0)) != .integer(0) || (conns["slow_reader_closed"] ?? .integer(0)) != .integer(0),
      "the daemon must stop reading (or close) the hog: \(conns)")
    let during = d.residentBytes
    #expect(during - before < 64 << 20, "RSS grew from \(before) to \(during)")
    // Someone else is still served.
    #expect(try d.client().generate("o", #""prompt":"hello","max_tokens":5"#).done != nil)
    #expect(d.terminate() == 0)
  }

  /// kill -9 right after a feedback is acknowledged: the rating is in the log after restart.
  /// Repeated, each time on a generation made just before.
  @Test func acknowledgedFeedbackSurvivesKill9() throws {
    let state = TinyModel.temporaryPath("state-kill9")
    for round in 0..<3 {
      let d = try DaemonProcess(state: state)
      let c = try d.client()
      let g = c.generate("g", #""prompt":"rate me","max_tokens":4,"seed":\#(round)"#)
      guard let request = g.request else {
        Issue.record("no done")
        return
      }
      let rating = round % 2 == 0 ? "up" : "down"
      c.send(#"{"op":"feedback","id":"f","request":""# + request + #"","rating":""# + rating + #""}"# + "\n")
      #expect(Self.string(c.readReply(), "event") == "ok")
      d.kill9()
      let log = try FeedbackLog(stateDirectory: state)
      #expect(try log.effectiveFeedback(request: request)?.rating.rawValue == rating, "round \(round)")
      #expect(try log.generation(request: request)?.completionTokens.count == 4)
      try log.close()
    }
  }

  /// With --keys: nothing before auth, adapters and admin ops per key, feedback only on one's own requests.
  @Test func keysGateAdaptersOpsAndFeedback() throws {
    let keys = TinyModel.temporaryPath("keys.json")
    try Data(
      #"""
      {"keys": [
        {"name": "alice", "key": "alice-key-0123456789", "adapters": ["a0"]},
        {"name": "bob", "key": "bob-key-0123456789ab", "adapters": ["*"]},
        {"name": "root", "key": "root-key-0123456789a", "adapters": ["*"], "admin": true}
      ]}
      """#.utf8
    ).write(to: URL(fileURLWithPath: keys))
    let d = try DaemonProcess(adapters: 2, extra: ["--keys", keys])
    let alice = try d.client()
    alice.send(#"{"op":"stats","id":"s0"}"# + "\n")
    #expect(Self.string(alice.readReply(), "code") == "unauthorized")
    alice.send(#"{"op":"auth","id":"z0","key":"wrong-key-0123456789"}"# + "\n")
    #expect(Self.string(alice.readReply(), "code") == "unauthorized")
    alice.send(#"{"op":"auth","id":"z1","key":"alice-key-0123456789"}"# + "\n")
    #expect(Self.string(alice.readReply(), "event") == "ok")
    #expect(alice.generate("g1", #""prompt":"x","max_tokens":3,"adapter":"a1""#).errorCode == "unauthorized")
    let mine = alice.generate("g2", #""prompt":"x","max_tokens":3,"adapter":"a0""#)
    #expect(mine.done != nil)
    alice.send(#"{"op":"unload","id":"u","name":"a0"}"# + "\n")
    #expect(Self.string(alice.readReply(), "code") == "unauthorized")
    let bob = try d.client()
    bob.send(#"{"op":"auth","id":"z","key":"bob-key-0123456789ab"}"# + "\n")
    _ = bob.readReply()
    bob.send(#"{"op":"feedback","id":"f","request":""# + (mine.request ?? "") + #"","rating":"down"}"# + "\n")
    #expect(Self.string(bob.readReply(), "code") == "unauthorized", "bob may not rate alice's request")
    alice.send(#"{"op":"feedback","id":"f","request":""# + (mine.request ?? "") + #"","rating":"up"}"# + "\n")
    #expect(Self.string(alice.readReply(), "event") == "ok")
    let root = try d.client()
    root.send(#"{"op":"auth","id":"z","key":"root-key-0123456789a"}"# + "\n")
    _ = root.readReply()
    root.send(#"{"op":"unload","id":"u","name":"a0"}"# + "\n")
    #expect(Self.string(root.readReply(), "event") == "ok")
    #expect(d.terminate() == 0)
  }

  /// A client that half-closes after its request still gets the whole answer.
  @Test func halfCloseStillGetsTheAnswer() throws {
    let d = try DaemonProcess()
    let c = try d.client()
    c.send(#"{"op":"generate","id":"h","prompt":"half","max_tokens":30,"temperature":0}"# + "\n")
    c.shutdownWrite()
    let g = c.collect(["h"])["h"]
    #expect(g?.done != nil)
    #expect(c.readsEOF())
    #expect(d.terminate() == 0)
  }

  /// SIGTERM while generating: the running request ends with `done`, the daemon exits 0.
  @Test func sigtermDuringGenerationExitsCleanly() throws {
    let d = try DaemonProcess(extra: ["--grace", "0.2"])
    let c = try d.client()
    c.send(#"{"op":"generate","id":"long","prompt":"once","max_tokens":250,"temperature":1,"seed":3}"# + "\n")
    _ = c.readReply()
    let status = d.terminate()
    let g = c.collect(["long"])["long"]
    #expect(g?.done != nil, "the in-flight request gets its done")
    #expect(status == 0)
    #expect(d.log.contains("stopped"))
  }
}

/// Results written from concurrent client threads.
final class LockedArray: @unchecked Sendable {  // `values` under `lock`
  private let lock = NSLock()
  private var values: [String?]
  init(count: Int) { values = Array(repeating: nil, count: count) }
  func set(_ i: Int, _ v: String?) { lock.withLock { values[i] = v } }
  func get(_ i: Int) -> String? { lock.withLock { values[i] } }
}
