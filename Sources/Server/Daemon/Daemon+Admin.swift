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
      do {
        let versions = try AdapterHistory.list(registry: registry, name: name)
        return .ok(
          id: id,
          fields: [
            "adapter": .string(name), "versions": .array(versions.map(Self.json)),
            "current": versions.first(where: \.isCurrent).map { .integer(Int64($0.version)) } ?? .null,
            "anchor": versions.first(where: \.isAnchor).map { .integer(Int64($0.version)) } ?? .null,
          ])
      } catch {
        return .error(id: id, code: .adapterNotFound, message: "\(error)")
      }
    case .rollback(let id, let name, let to):
      guard let registry else { return noRegistry(id) }
      do {
        let v = try AdapterHistory.rollback(registry: registry, name: name, to: to)
        return .ok(id: id, fields: ["adapter": .string(name), "current": .integer(Int64(v))])
      } catch LearnerError.unknownAdapter(let n) {
        return .error(id: id, code: .adapterNotFound, message: LearnerError.unknownAdapter(n).description)
      } catch let e as RegistryError {
        if case .unknownAdapter = e { return .error(id: id, code: .adapterNotFound, message: e.description) }
        return .error(id: id, code: .badRequest, message: e.description)
      } catch {
        return .error(id: id, code: .badRequest, message: "\(error)")
      }
    case .learn(let id, _, _):
      return .error(
        id: id, code: .badRequest,
        message:
          "this server runs without the learner (started with --learn off); feedback is kept but no adapter learns")
    case .auth(let id, _):
      // With keys, `auth` is answered before it gets here.
      return .ok(id: id, fields: ["auth": .string("not required: this server has no --keys")])
    case .generate(let g):
      return .error(id: g.id, code: .internal, message: "generate reached the admin queue")
    case .cancel(let id, _):
      return .error(id: id, code: .internal, message: "cancel reached the admin queue")
    }
  }

  /// `learn`: queued to the learner thread; with `wait` the reply is its run, else an `ok` now.
  /// Never runs on the admin queue, so feedback is not held up behind training.
  func learn(id: String, adapter: String, wait: Bool, owner: UInt64) {
    guard let learner else { return }
    begin(owner)
    if !wait {
      learner.submit(adapter: adapter) { r in
        if case .failure(let e) = r {
          FileHandle.standardError.write(Data("lorad: learner: \(adapter): \(e)\n".utf8))
        }
      }
      reply(.ok(id: id, fields: ["adapter": .string(adapter), "queued": .bool(true)]), to: owner)
      end(owner)
      return
    }
    learner.submit(adapter: adapter) { [self] r in
      switch r {
      case .success(let run):
        reply(.ok(id: id, fields: Self.json(run)), to: owner)
      case .failure(let e as LearnerError):
        if case .unknownAdapter = e {
          reply(.error(id: id, code: .adapterNotFound, message: e.description), to: owner)
        } else {
          reply(.error(id: id, code: .badRequest, message: e.description), to: owner)
        }
      case .failure(let e):
        reply(.error(id: id, code: .internal, message: "learning failed: \(e)"), to: owner)
      }
      end(owner)
    }
  }

  static func json(_ run: LearnerRun) -> JSONObject {
    var o: JSONObject = [
      "adapter": .string(run.adapter), "outcome": .string(run.outcome.rawValue), "reason": .string(run.reason),
      "from_version": .integer(Int64(run.fromVersion)),
      "version": run.toVersion.map { .integer(Int64($0)) } ?? .null,
    ]
    if let m = try? JSONParser.parse(Array(run.metrics.utf8)) { o["metrics"] = m }
    return o
  }

  static func json(_ v: VersionInfo) -> JSONValue {
    var o: JSONObject = [
      "version": .integer(Int64(v.version)), "created": v.created.map { .string($0) } ?? .null,
      "parent": v.parent.map { .integer(Int64($0)) } ?? .null, "outcome": .string(v.outcome),
      "current": .bool(v.isCurrent), "anchor": .bool(v.isAnchor),
    ]
    if let r = v.reason { o["reason"] = .string(r) }
    if !v.metrics.isEmpty {
      var m = JSONObject()
      for k in v.metrics.keys.sorted() { m[k] = v.metrics[k]!.isFinite ? .double(v.metrics[k]!) : .null }
      o["metrics"] = .object(m)
    }
    return .object(o)
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
