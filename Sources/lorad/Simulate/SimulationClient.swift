import Foundation
import Server

/// The simulation's side of the protocol: batches of generate requests pipelined on one
/// connection (so the daemon decodes them together), feedback and learn.
final class SimulationClient {
  let client: LineClient
  /// Requests in flight at most (below the daemon's per-connection bound, 64 by default).
  var window = 48
  private var next = 0

  init(_ client: LineClient) { self.client = client }

  /// One finished generation.
  struct Answer: Sendable {
    var prompt: String
    var request: String
    var text: String
    var finish: String
    var version: Int?
    /// Completion tokens (the `done` event's usage).
    var tokens: Int
  }

  /// A generation to ask for.
  struct Ask {
    var prompt: String
    var seed: UInt64
  }

  /// Generates every ask through `adapter` (chat template applied), `window` at a time; answers
  /// in the order of `asks`.
  func generate(_ asks: [Ask], adapter: String, maxTokens: Int, temperature: Double) throws -> [Answer] {
    var answers = [Answer?](repeating: nil, count: asks.count)
    var ids: [String: Int] = [:]
    var sent = 0, done = 0
    var versions: [String: Int] = [:]
    while done < asks.count {
      while sent < asks.count && sent - done < window {
        next += 1
        let id = "g\(next)"
        ids[id] = sent
        let user: JSONValue = .object(["role": .string("user"), "content": .string(asks[sent].prompt)])
        try client.send([
          "op": .string("generate"), "id": .string(id), "adapter": .string(adapter), "messages": .array([user]),
          "max_tokens": .integer(Int64(maxTokens)), "temperature": .double(temperature),
          "seed": .integer(Int64(clamping: asks[sent].seed)), "stream": .bool(false),
        ])
        sent += 1
      }
      guard let reply = try client.readReply() else {
        throw SimulateError.protocolError("the daemon closed the connection during a generation")
      }
      guard let id = reply.string("id"), let i = ids[id] else { continue }
      switch reply.string("event") {
      case "start":
        versions[id] = reply.int("version")
      case "done":
        answers[i] = Answer(
          prompt: asks[i].prompt, request: reply.string("request") ?? "", text: reply.string("text") ?? "",
          finish: reply.string("finish") ?? "", version: versions[id], tokens: Self.completionTokens(reply))
        done += 1
      case "error":
        throw SimulateError.protocolError(
          "generate failed (\(reply.string("code") ?? "?")): \(reply.string("message") ?? "")")
      default: continue
      }
    }
    return answers.map { $0! }
  }

  static func completionTokens(_ reply: JSONObject) -> Int {
    if case .object(let u)? = reply["usage"] { return u.int("completion_tokens") ?? 0 }
    return 0
  }

  /// Sends `learn` with wait and returns at once; `learnReply(id:)` reads its outcome.
  func startLearn(adapter: String) throws -> String {
    next += 1
    let id = "k\(next)"
    try client.send(["op": .string("learn"), "id": .string(id), "adapter": .string(adapter), "wait": .bool(true)])
    return id
  }

  /// Rates finished generations; returns when every rating is acknowledged (durable).
  func feedback(_ ratings: [(request: String, up: Bool)]) throws {
    var pending = Set<String>()
    for (k, r) in ratings.enumerated() {
      next += 1
      let id = "f\(next)-\(k)"
      pending.insert(id)
      try client.send([
        "op": .string("feedback"), "id": .string(id), "request": .string(r.request),
        "rating": .string(r.up ? "up" : "down"),
      ])
    }
    while !pending.isEmpty {
      guard let reply = try client.readReply() else {
        throw SimulateError.protocolError("the daemon closed the connection before acknowledging feedback")
      }
      guard let id = reply.string("id"), pending.contains(id) else { continue }
      if reply.string("event") == "error" {
        throw SimulateError.protocolError(
          "feedback failed (\(reply.string("code") ?? "?")): \(reply.string("message") ?? "")")
      }
      pending.remove(id)
    }
  }

  /// What the learner did in one `learn` call.
  struct LearnOutcome {
    /// "promoted", "rejected", "nothing", or "error" when the daemon refused the op.
    var outcome: String
    var version: Int?
    var reason: String?
    var metrics: JSONValue?
    var seconds: Double
  }

  /// Runs the learner on `adapter` now and waits for its outcome.
  func learn(adapter: String) throws -> LearnOutcome {
    let t0 = Date()
    return try learnReply(id: try startLearn(adapter: adapter), since: t0)
  }

  /// Waits for the outcome of the `learn` sent as `id` at `t0`.
  func learnReply(id: String, since t0: Date) throws -> LearnOutcome {
    while true {
      guard let reply = try client.readReply() else {
        throw SimulateError.protocolError("the daemon closed the connection during learn")
      }
      guard reply.string("id") == id else { continue }
      let seconds = Date().timeIntervalSince(t0)
      if reply.string("event") == "error" {
        return LearnOutcome(
          outcome: "error", version: nil,
          reason: "\(reply.string("code") ?? "?"): \(reply.string("message") ?? "")", metrics: nil, seconds: seconds)
      }
      return LearnOutcome(
        outcome: reply.string("outcome") ?? "?", version: reply.int("version"), reason: reply.string("reason"),
        metrics: reply["metrics"], seconds: seconds)
    }
  }
}
