import Foundation
import Testing

@testable import Server

/// The learner's protocol ops on the real binary: feedback on generations of a learnable
/// adapter, `learn` with `wait` (the reply is the run), `history`, `rollback`; `learn` without
/// `wait` replies at once.
@Suite struct LearnOpsTests {
  static func string(_ r: JSONObject?, _ k: String) -> String? {
    if case .string(let s)? = r?[k] { return s }
    return nil
  }

  @Test func learnHistoryRollback() throws {
    let d = try DaemonProcess(adapters: 1, extra: ["--learn-batch", "1000"])
    let c = try d.client(timeout: 120)
    for i in 0..<12 {
      let g = c.generate("g\(i)", #""prompt":"question \#(i % 3)","max_tokens":6,"adapter":"a0","seed":\#(i)"#)
      let request = try #require(g.request)
      let rating = i % 2 == 0 ? "up" : "down"
      c.send(#"{"op":"feedback","id":"f\#(i)","request":""# + request + #"","rating":""# + rating + #""}"# + "\n")
      #expect(Self.string(c.readReply(), "event") == "ok")
    }
    c.send(#"{"op":"learn","id":"k1","adapter":"a0","wait":true}"# + "\n")
    let run = c.readReply()
    #expect(Self.string(run, "event") == "ok", "\(String(describing: run))")
    let outcome = Self.string(run, "outcome")
    #expect(outcome == "promoted" || outcome == "rejected", "\(String(describing: run))")
    guard case .integer(let v)? = run?["version"] else {
      Issue.record("no version in \(String(describing: run))")
      return
    }
    #expect(v == 2)
    c.send(#"{"op":"history","id":"h1","adapter":"a0"}"# + "\n")
    let h = c.readReply()
    guard case .array(let versions)? = h?["versions"] else {
      Issue.record("no versions in \(String(describing: h))")
      return
    }
    #expect(versions.count == 3)
    if case .object(let last)? = versions.last {
      #expect(Self.string(last, "outcome") == outcome)
      #expect(last["parent"] == .integer(1))
    }
    // Rollback to version 0, then learn without waiting: an immediate ok.
    c.send(#"{"op":"rollback","id":"r1","adapter":"a0","to":0}"# + "\n")
    let r = c.readReply()
    #expect(r?["current"] == .integer(0), "\(String(describing: r))")
    c.send(#"{"op":"learn","id":"k2","adapter":"a0"}"# + "\n")
    #expect(c.readReply()?["queued"] == .bool(true))
    c.send(#"{"op":"learn","id":"k3","adapter":"nope","wait":true}"# + "\n")
    #expect(Self.string(c.readReply(), "code") == "adapter_not_found")
    #expect(d.terminate() == 0)
  }
}
