import Adapters
import Engine
import Foundation
import Learning
import Model

/// `lorad serve`: the libuv `LineServer` in front, the `Scheduler` behind, adapters and the
/// feedback log (`FeedbackLog`, SQLite in the state directory) beside. The loop thread only decodes and routes: generation goes to the scheduler;
/// the other ops (which touch the disk or the feedback store) run on the serial `admin` queue;
/// replies come back through `LineServer.send(_:to:)`.
///
/// Per-connection bookkeeping (`owners`, under `lock`) counts the requests still to be
/// answered, so a client that half-closes (EOF after its last request) still gets every reply
/// before its connection closes.
public final class Daemon: @unchecked Sendable {  // mutable state under `lock`; server/scheduler set once in init
  public let configuration: DaemonConfiguration
  public let model: LoadedModel
  public let registry: AdapterRegistry?
  /// Every finished generation is queued into it before its `done` is sent, so feedback can
  /// name it at once; feedback is acknowledged only once committed durably.
  public let log: FeedbackLog
  /// The online learner (nil: adapters do not learn; `learn` is refused).
  public let learner: Learner?
  public private(set) var server: LineServer!
  public private(set) var scheduler: Scheduler!
  let admin = DispatchQueue(label: "lorad-admin")
  let started = Date()

  struct Owner {
    /// Requests accepted on this connection and not yet answered in full.
    var pending = 0
    var inputEnded = false
    /// The auth identity, once the connection has authenticated (nil: none needed or not yet).
    var identity: AuthIdentity?
  }
  let lock = NSLock()
  var owners: [UInt64: Owner] = [:]

  /// With keys (`--keys`), a connection must authenticate first; each key limits adapters and ops.
  public let policy: AuthPolicy?

  public init(
    model: LoadedModel, registry: AdapterRegistry?, log: FeedbackLog, policy: AuthPolicy? = nil,
    learner: Learner? = nil, configuration: DaemonConfiguration
  ) {
    self.policy = policy
    self.learner = learner
    self.model = model
    self.registry = registry
    self.configuration = configuration
    self.log = log
    scheduler = Scheduler(model: model, registry: registry, configuration: configuration.engine) {
      [unowned self] event in deliver(event)
    }
    server = LineServer(
      configuration: configuration.server,
      onClose: { [unowned self] id, _ in connectionClosed(id) },
      handler: { [unowned self] request, connection in handle(request, on: connection.id) })
    server.onEndOfInput = { [unowned self] id in inputEnded(id) }
    server.isAwaitingReplies = { [unowned self] id in lock.withLock { (owners[id.rawValue]?.pending ?? 0) > 0 } }
  }

  /// Starts the compute thread and binds the listeners (throws if a listener cannot bind).
  public func start() throws {
    scheduler.start()
    learner?.start()
    do {
      try server.start()
    } catch {
      scheduler.shutdown(grace: 0)
      throw error
    }
  }

  /// Graceful stop: no new connections or requests; in-flight requests get `graceSeconds` to
  /// finish, the rest are cancelled (their `done` says so); replies are flushed for up to
  /// `flushSeconds`; then the loop stops. Returns how many requests were cancelled.
  @discardableResult
  public func shutdown() -> Int {
    server.stopListening()
    learner?.stop()
    let cancelled = scheduler.shutdown(grace: configuration.graceSeconds)
    admin.sync {}
    do { try log.flush() } catch { FileHandle.standardError.write(Data("lorad: \(error)\n".utf8)) }
    server.finishAll()
    let deadline = Date(timeIntervalSinceNow: configuration.flushSeconds)
    while server.counters.open > 0 && Date() < deadline { usleep(10_000) }
    server.stop()
    server.wait()
    return cancelled
  }

  // MARK: loop thread

  private func handle(_ request: Request, on id: ConnectionID) {
    let owner = id.rawValue
    if let policy {
      if case .auth(let reqID, let key) = request {
        guard let identity = policy.authenticate(key: key) else {
          reply(.error(id: reqID, code: .unauthorized, message: "unknown key"), to: owner)
          return
        }
        lock.withLock { owners[owner, default: Owner()].identity = identity }
        reply(.ok(id: reqID, fields: ["name": .string(identity.name), "admin": .bool(identity.admin)]), to: owner)
        return
      }
      guard let identity = lock.withLock({ owners[owner]?.identity }) else {
        reply(
          .error(
            id: request.id, code: .unauthorized,
            message: "this server needs a key: send {\"op\":\"auth\",\"id\":…,\"key\":…} first"),
          to: owner)
        return
      }
      if let refusal = policy.authorize(request, as: identity) {
        reply(refusal.reply, to: owner)
        return
      }
    }
    switch request {
    case .generate(let g): generate(g, owner: owner)
    case .learn(let reqID, let adapter, let wait) where learner != nil:
      learn(id: reqID, adapter: adapter, wait: wait, owner: owner)
    case .cancel(let reqID, let target):
      if scheduler.cancel(RequestKey(owner: owner, clientID: target)) {
        reply(.ok(id: reqID, fields: ["target": .string(target)]), to: owner)
      } else {
        reply(
          .error(
            id: reqID, code: .unknownRequest,
            message: "no running request with id '\(target)' on this connection (it may have finished)"),
          to: owner)
      }
    default:
      begin(owner)
      admin.async { [self] in
        let r = administer(request, owner: owner)
        server.send(r, to: ConnectionID(rawValue: owner))
        end(owner)
      }
    }
  }

  private func generate(_ g: GenerateRequest, owner: UInt64) {
    var sampling = SamplingOptions()
    if let t = g.temperature { sampling.temperature = Float(t) }
    if let p = g.topP { sampling.topP = Float(p) }
    if let k = g.topK { sampling.topK = k }
    var rng = SystemRandomNumberGenerator()
    sampling.seed = g.seed ?? rng.next()
    do { try sampling.validate() } catch {
      reply(.error(id: g.id, code: .badRequest, message: "\(error)"), to: owner)
      return
    }
    let input: GenerationJob.Input
    switch g.input {
    case .prompt(let p): input = .text(p)
    case .messages(let ms): input = .chat(ms.map { Model.ChatMessage(role: $0.role.rawValue, content: $0.content) })
    }
    let adapters = g.adapters.map { a in
      AdapterChoice(spec: a.version.map { "\(a.name)@\($0)" } ?? a.name, scale: Float(a.scale))
    }
    let job = GenerationJob(
      key: RequestKey(owner: owner, clientID: g.id), input: input, adapters: adapters, maxTokens: g.maxTokens,
      sampling: sampling, stop: g.stop, stream: g.stream, who: who(owner))
    begin(owner)
    if case .rejected(let f) = scheduler.submit(job) {
      end(owner)
      reply(Self.reply(g.id, f), to: owner)
    }
  }

  private func connectionClosed(_ id: ConnectionID) {
    scheduler.cancelAll(owner: id.rawValue)
    lock.withLock { owners[id.rawValue] = nil }
  }

  private func inputEnded(_ id: ConnectionID) {
    let done = lock.withLock {
      owners[id.rawValue, default: Owner()].inputEnded = true
      return owners[id.rawValue]!.pending == 0
    }
    if done { server.finish(id) }
  }

  // MARK: any thread

  func reply(_ r: Reply, to owner: UInt64) {
    server.send(r, to: ConnectionID(rawValue: owner))
  }

  func who(_ owner: UInt64) -> String? { lock.withLock { owners[owner]?.identity?.name } }

  /// The compute thread and the loop answer: the watchdog pings only while this holds.
  public var isHealthy: Bool {
    _ = scheduler.stats
    return server.counters.open >= 0
  }

  /// One more request to answer on this connection.
  func begin(_ owner: UInt64) {
    lock.withLock { owners[owner, default: Owner()].pending += 1 }
  }

  /// A request of this connection is answered in full (its last reply is already queued, so a
  /// `finish` queued now closes the connection after it).
  func end(_ owner: UInt64) {
    let close = lock.withLock { () -> Bool in
      guard var o = owners[owner] else { return false }
      o.pending -= 1
      owners[owner] = o
      return o.pending == 0 && o.inputEnded
    }
    if close { server.finish(ConnectionID(rawValue: owner)) }
  }

  /// Compute thread: engine events become reply lines.
  private func deliver(_ event: EngineEvent) {
    switch event {
    case .started(let k, let request, let adapters):
      let first = adapters.first
      send(.start(id: k.clientID, request: request, adapter: first?.name, version: first?.version), k)
    case .token(let k, let text):
      send(.token(id: k.clientID, text: text), k)
    case .done(let r):
      if !r.promptTokens.isEmpty { remember(r) }
      send(
        .done(
          id: r.key.clientID, request: r.request, text: r.completionText,
          finish: FinishReason(rawValue: r.finish.rawValue) ?? .stop,
          usage: Usage(promptTokens: r.promptTokens.count, completionTokens: r.completionTokens.count)), r.key)
      end(r.key.owner)
    case .failed(let k, let f):
      send(Self.reply(k.clientID, f), k)
      end(k.owner)
    }
  }

  private func send(_ r: Reply, _ k: RequestKey) {
    // The outbox is full or the server is stopping: this client cannot take more; drop the request.
    if !server.send(r, to: ConnectionID(rawValue: k.owner)) { scheduler.cancel(k) }
  }

  /// Queues a finished generation into the log (before its `done` goes out, so feedback on it works
  /// at once). A generation of several adapters is logged without one: no single adapter can learn
  /// from its rating.
  private func remember(_ r: Engine.GenerationRecord) {
    let one = r.adapters.count == 1 ? r.adapters[0] : nil
    let rec = Learning.GenerationRecord(
      request: r.request, time: Date(), who: r.who, adapter: one?.name, version: one?.version, prompt: r.promptText,
      promptTokens: r.promptTokens, completion: r.completionText, completionTokens: r.completionTokens,
      logprobs: r.logprobs,
      sampling: .init(
        temperature: Double(r.sampling.temperature), topP: Double(r.sampling.topP), topK: r.sampling.topK,
        seed: r.sampling.seed, maxTokens: r.maxTokens, stop: r.stop),
      finish: r.finish)
    do { try log.record(rec) } catch {
      FileHandle.standardError.write(Data("lorad: feedback log: \(error)\n".utf8))
    }
  }

  static func reply(_ id: String, _ f: EngineFailure) -> Reply {
    let code: ErrorCode
    switch f {
    case .badRequest: code = .badRequest
    case .adapterNotFound: code = .adapterNotFound
    case .contextOverflow: code = .contextOverflow
    case .overloaded: code = .overloaded
    case .internalError: code = .internal
    }
    return .error(id: id, code: code, message: f.message)
  }
}
