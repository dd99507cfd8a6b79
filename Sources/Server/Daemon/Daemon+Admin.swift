import Adapters
import Engine
import Foundation
import Learning
import Model

extension Daemon {
  /// Answers every op except generate and cancel. Runs on the `admin` queue (it may touch the
  /// disk), never on the loop or compute thread.
  func administer(_ request: Request, owner: UInt64) -> Reply {
    switch request {
    case .feedback(let f):
      do {
        let e = try log.recordFeedback(
          request: f.request, rating: f.rating == .up ? .up : .down, note: f.note, who: who(owner))
        return .ok(
          id: f.id,
          fields: ["request": .string(f.request), "rating": .string(f.rating.rawValue), "seq": .integer(e.seq)])
      } catch FeedbackLogError.unknownRequest(let r) {
        return .error(
          id: f.id, code: .unknownRequest,
          message: "no finished generation '\(r)' is known; rate the `request` id a `done` event carried")
      } catch FeedbackLogError.notYourRequest(let r) {
        return .error(id: f.id, code: .unauthorized, message: "request '\(r)' was made by another key")
      } catch {
        return .error(id: f.id, code: .internal, message: "the feedback was not stored: \(error)")
      }
    case .adapters(let id):
      guard let registry else { return .ok(id: id, fields: ["adapters": .array([])]) }
      return .ok(id: id, fields: ["adapters": .array(registry.list().map(Self.json))])
    case .load(let id, let name, let path):
      return load(id: id, name: name, path: path)
    case .unload(let id, let name):
      guard let registry else { return noRegistry(id) }
      let n = registry.unload(name: name)
      return .ok(id: id, fields: ["name": .string(name), "dropped": .integer(Int64(n))])
    case .stats(let id):
      return .ok(id: id, fields: stats())
    case .history(let id, let name):
      guard let registry else { return noRegistry(id) }
      guard let a = registry.list().first(where: { $0.name == name }) else {
        return .error(id: id, code: .adapterNotFound, message: "no adapter '\(name)' in \(registry.directory)")
      }
      return .ok(
        id: id,
        fields: [
          "adapter": .string(name), "versions": .array(a.versions.map { .integer(Int64($0)) }),
          "current": a.current.map { .integer(Int64($0)) } ?? .null,
        ])
    case .rollback(let id, let name, let to):
      guard let registry else { return noRegistry(id) }
      do {
        try registry.setCurrent(name: name, version: to)
        return .ok(id: id, fields: ["adapter": .string(name), "current": .integer(Int64(to))])
      } catch let e as RegistryError {
        return .error(id: id, code: .adapterNotFound, message: e.description)
      } catch {
        return .error(id: id, code: .internal, message: "\(error)")
      }
    case .learn(let id, _, _):
      return .error(
        id: id, code: .badRequest,
        message: "the learner is not built yet: feedback is accepted and kept, but no adapter learns from it")
    case .auth(let id, _):
      // With keys, `auth` is answered before it gets here.
      return .ok(id: id, fields: ["auth": .string("not required: this server has no --keys")])
    case .generate(let g):
      return .error(id: g.id, code: .internal, message: "generate reached the admin queue")
    case .cancel(let id, _):
      return .error(id: id, code: .internal, message: "cancel reached the admin queue")
    }
  }

  private func noRegistry(_ id: String) -> Reply {
    .error(
      id: id, code: .adapterNotFound, message: "this server has no adapters directory; start it with --adapters DIR")
  }

  /// `load`: makes the adapter at `path` available as `name` — a new adapter directory, or a new
  /// current version of an existing one — and warms it into memory.
  private func load(id: String, name: String, path: String) -> Reply {
    guard let registry else { return noRegistry(id) }
    do {
      let weights = try LoRALoader.load(path: path, config: model.model.config, name: name)
      let version: Int
      if registry.list().contains(where: { $0.name == name }) {
        version = try registry.publish(name: name, weights: weights)
      } else {
        let dir = registry.directory + "/" + name
        try FileManager.default.createDirectory(atPath: registry.directory, withIntermediateDirectories: true)
        try PEFTAdapter.write(weights, to: dir)
        _ = registry.rescan()
        version = 0
      }
      let lease = try registry.acquire("\(name)@\(version)")
      let bytes = lease.adapter.bytes
      lease.release()
      return .ok(
        id: id,
        fields: ["name": .string(name), "version": .integer(Int64(version)), "bytes": .integer(Int64(bytes))])
    } catch let e as RegistryError {
      return .error(id: id, code: .badRequest, message: e.description)
    } catch {
      return .error(id: id, code: .badRequest, message: "cannot load \(path) as '\(name)': \(error)")
    }
  }

  static func json(_ a: AdapterSummary) -> JSONValue {
    var o: JSONObject = [
      "name": .string(a.name), "versions": .array(a.versions.map { .integer(Int64($0)) }),
      "current": a.current.map { .integer(Int64($0)) } ?? .null,
      "rank": a.rank.map { .integer(Int64($0)) } ?? .null,
      "targets": .array(a.targets.map { .string($0.shortName) }),
      "bytes": .integer(Int64(a.currentDiskBytes)), "resident": .bool(a.resident),
      "resident_bytes": .integer(Int64(a.residentBytes)), "learnable": .bool(a.learnable),
    ]
    if let p = a.problem { o["problem"] = .string(p) }
    return .object(o)
  }

  func stats() -> JSONObject {
    let e = scheduler.stats
    let c = server.counters
    var o: JSONObject = [
      "uptime_seconds": .double(Date().timeIntervalSince(started)),
      "requests": .object([
        "submitted": .integer(Int64(e.submitted)), "completed": .integer(Int64(e.completed)),
        "cancelled": .integer(Int64(e.cancelled)), "failed": .integer(Int64(e.failed)),
        "overloaded": .integer(Int64(e.overloaded)), "live": .integer(Int64(e.live)),
        "queued": .integer(Int64(e.queued)), "peak_live": .integer(Int64(e.peakLive)),
      ]),
      "tokens": .object([
        "prompt": .integer(Int64(e.promptTokens)), "generated": .integer(Int64(e.generatedTokens)),
        "steps": .integer(Int64(e.steps)), "busy_seconds": .double(e.busySeconds),
      ]),
      "connections": .object([
        "accepted": .integer(Int64(c.accepted)), "open": .integer(Int64(c.open)),
        "rejected": .integer(Int64(c.rejected)), "lines": .integer(Int64(c.requests)),
        "error_replies": .integer(Int64(c.errorReplies)), "too_large": .integer(Int64(c.tooLarge)),
        "idle_closed": .integer(Int64(c.idleClosed)), "slow_reader_closed": .integer(Int64(c.slowReaderClosed)),
        "paused": .integer(Int64(c.paused)), "peak_queued_bytes": .integer(Int64(c.peakQueuedBytes)),
      ]),
    ]
    if let registry {
      let s = registry.stats
      o["adapters"] = .object([
        "loads": .integer(Int64(s.loads)), "hits": .integer(Int64(s.hits)),
        "evictions": .integer(Int64(s.evictions)), "resident": .integer(Int64(s.residentCount)),
        "resident_bytes": .integer(Int64(s.residentBytes)), "budget_bytes": .integer(Int64(registry.memoryBudget)),
        "leases": .integer(Int64(s.leases)),
      ])
    }
    if let f = try? log.stats() {
      o["feedback"] = .object([
        "generations": .integer(Int64(f.generations)), "events": .integer(Int64(f.feedbackEvents)),
        "rated_requests": .integer(Int64(f.ratedRequests)), "queued": .integer(Int64(f.queued)),
        "write_failures": .integer(Int64(f.writeFailures)),
      ])
    }
    return o
  }
}
