import CLibUV
import Dispatch
import Foundation

/// The JSON-lines server: a libuv loop on its own thread accepting on TCP and/or a Unix socket,
/// framing lines, decoding them into `Request`s and calling `handler` with each — on the loop
/// thread, which never computes: the handler answers at once (`Connection.send`) or hands the
/// request on and lets another thread answer later through `send(_:to:)`.
///
/// Threads: `start()` sets the loop up on the calling thread, then the loop thread owns every
/// libuv handle, `connections` and `nextID`. Other threads reach the loop only through the
/// outbox (`outboxLock`) and `uv_async_send`. `counters` are guarded by `countersLock`.
public final class LineServer: @unchecked Sendable {  // see above: loop thread, outboxLock, countersLock
  /// Called on the loop thread for each valid request line, in the order lines arrive.
  public typealias Handler = (Request, Connection) -> Void
  /// Called on the loop thread once per connection, when it has closed.
  public typealias CloseHandler = (ConnectionID, CloseReason) -> Void
  /// Called on the loop thread when a client has finished sending (EOF after its last line).
  /// The connection stays open for replies still coming until `finish(_:)`; without a handler
  /// it closes once what is queued is written.
  public typealias EndOfInputHandler = (ConnectionID) -> Void

  public let configuration: ServerConfiguration
  let decoder: RequestDecoder
  let handler: Handler
  let onClose: CloseHandler?
  /// Set before `start()`; see `EndOfInputHandler`.
  public var onEndOfInput: EndOfInputHandler?
  /// Set before `start()`: whether a connection still waits for replies to its requests. The idle
  /// timeout never closes such a connection (a `learn` with `wait` may run for minutes in silence);
  /// it looks again one timeout later. Called on the loop thread.
  public var isAwaitingReplies: ((ConnectionID) -> Bool)?

  // Loop thread only (or the thread in `start()` before the loop thread exists).
  let loop: UnsafeMutablePointer<uv_loop_t>
  private let async: UnsafeMutablePointer<uv_async_t>
  var listeners: [UnsafeMutableRawPointer] = []
  var connections: [ConnectionID: Connection] = [:]
  var nextID: UInt64 = 1
  private var started = false
  private var asyncReady = false
  private var createdSocketPath: String?

  /// Set by `start()` before it returns; the TCP port actually bound (useful with port 0), or
  /// that of the first inherited TCP listener when there is no `listen`.
  public private(set) var tcpPort: Int?

  private enum Command {
    case send(ConnectionID, [UInt8])
    case close(ConnectionID)
    case finish(ConnectionID)
    case finishAll
    case stopListening
  }
  private let outboxLock = NSLock()
  private var outbox: [Command] = []  // guarded by outboxLock
  private var outboxBytes = 0  // guarded by outboxLock
  private var accepting = false  // guarded by outboxLock: the async handle is open
  private var stopRequested = false  // guarded by outboxLock

  private let countersLock = NSLock()
  private var _counters = ServerCounters()  // guarded by countersLock
  private let finished = DispatchSemaphore(value: 0)

  public init(configuration: ServerConfiguration, onClose: CloseHandler? = nil, handler: @escaping Handler) {
    self.configuration = configuration
    self.decoder = RequestDecoder(limits: configuration.limits)
    self.handler = handler
    self.onClose = onClose
    loop = .allocate(capacity: 1)
    async = .allocate(capacity: 1)
  }

  deinit {
    if !started {
      loop.deallocate()
      async.deallocate()
    }
  }

  /// Binds the listeners (throwing `UVError` / `ServerError` if it cannot) and starts the loop
  /// thread. Ignores SIGPIPE process-wide: a write to a vanished client must be an error, not
  /// the end of the daemon.
  public func start() throws {
    guard !started else { throw ServerError.alreadyStarted }
    started = true
    signal(SIGPIPE, SIG_IGN)
    try uvCheck(uv_loop_init(loop), "uv_loop_init")
    do {
      try uvCheck(
        uv_async_init(
          loop, async,
          { a in
            let server = Unmanaged<LineServer>.fromOpaque(a!.pointee.data).takeUnretainedValue()
            server.drainOutbox()
          }), "uv_async_init")
      asyncReady = true
      async.pointee.data = Unmanaged.passUnretained(self).toOpaque()
      if let listen = configuration.listen { tcpPort = try listenTCP(listen) }
      if let path = configuration.socketPath {
        try listenUnix(path)
        createdSocketPath = path
      }
      for inherited in configuration.inheritedListeners {
        let port = try listenInherited(inherited)
        if tcpPort == nil { tcpPort = port }
      }
    } catch {
      if !asyncReady { async.deallocate() }
      closeEverything()
      uv_run(loop, UV_RUN_DEFAULT)
      uv_loop_close(loop)
      loop.deallocate()
      if let p = createdSocketPath { unlink(p) }
      finished.signal()
      throw error
    }
    outboxLock.withLock { accepting = true }
    let thread = Thread { [self] in runLoop() }
    thread.name = "lorad-loop"
    thread.start()
  }

  private func runLoop() {
    uv_run(loop, UV_RUN_DEFAULT)
    // Only reached once every handle is closed (stop()).
    uv_loop_close(loop)
    loop.deallocate()
    if let p = createdSocketPath { unlink(p) }
    finished.signal()
  }

  /// Asks the loop to close every connection and listener and exit. Any thread; returns at once.
  public func stop() {
    outboxLock.withLock {
      guard accepting else { return }
      stopRequested = true
      uv_async_send(async)
    }
  }

  /// Blocks until the loop thread has exited (after `stop()`).
  public func wait() {
    finished.wait()
    finished.signal()
  }

  /// Queues `reply` for connection `id` from any thread. False when the server is stopping or
  /// the outbox is full (`maxOutboxBytes`): the caller should give up on that request. A reply
  /// to a connection that has since closed is dropped.
  @discardableResult
  public func send(_ reply: Reply, to id: ConnectionID) -> Bool {
    let line = reply.line
    return outboxLock.withLock {
      guard accepting, !stopRequested, outboxBytes + line.count <= configuration.maxOutboxBytes else { return false }
      outbox.append(.send(id, line))
      outboxBytes += line.count
      uv_async_send(async)
      return true
    }
  }

  /// Closes connection `id` (after what was queued before this call). Any thread.
  public func close(_ id: ConnectionID) {
    outboxLock.withLock {
      guard accepting else { return }
      outbox.append(.close(id))
      uv_async_send(async)
    }
  }

  /// Closes connection `id` once everything queued before this call is written. Any thread.
  public func finish(_ id: ConnectionID) { enqueue(.finish(id)) }

  /// Closes every connection once what is queued for it is written. Any thread.
  public func finishAll() { enqueue(.finishAll) }

  /// Stops accepting connections (the listeners close; open connections go on). Any thread.
  public func stopListening() { enqueue(.stopListening) }

  private func enqueue(_ c: Command) {
    outboxLock.withLock {
      guard accepting else { return }
      outbox.append(c)
      uv_async_send(async)
    }
  }

  /// A snapshot of the running totals. Any thread.
  public var counters: ServerCounters { countersLock.withLock { _counters } }

  func count(_ update: (inout ServerCounters) -> Void) {
    countersLock.withLock { update(&_counters) }
  }

  /// Loop thread: runs what other threads queued, or shuts down.
  private func drainOutbox() {
    let (commands, stop) = outboxLock.withLock {
      let c = outbox
      outbox = []
      outboxBytes = 0
      if stopRequested { accepting = false }
      return (c, stopRequested)
    }
    for command in commands {
      switch command {
      case .send(let id, let line): connections[id]?.send(line: line)
      case .close(let id): connections[id]?.close(.normal)
      case .finish(let id): connections[id]?.closeAfterFlush()
      case .finishAll: for c in connections.values { c.closeAfterFlush() }
      case .stopListening: closeListeners()
      }
    }
    if stop { closeEverything() }
  }

  /// Loop thread: closes listeners, connections and the async handle; `uv_run` then returns.
  private func closeEverything() {
    closeListeners()
    for c in connections.values { c.close(.normal) }
    if asyncReady {
      asyncReady = false
      uv_close(asHandle(async)) { h in UnsafeMutableRawPointer(h!).deallocate() }
    }
  }

  /// Loop thread: closes the listeners (no new connections).
  private func closeListeners() {
    for l in listeners {
      uv_close(l.assumingMemoryBound(to: uv_handle_t.self)) { h in UnsafeMutableRawPointer(h!).deallocate() }
    }
    listeners = []
  }

  /// Loop thread: a listener has a connection waiting.
  func accept(from listener: UnsafeMutablePointer<uv_stream_t>, status: Int32) {
    guard status >= 0 else { return }
    let isPipe = listener.pointee.type == UV_NAMED_PIPE
    let client = UnsafeMutableRawPointer.allocate(
      byteCount: max(MemoryLayout<uv_tcp_t>.size, MemoryLayout<uv_pipe_t>.size), alignment: 16)
    let rc =
      isPipe
      ? uv_pipe_init(loop, client.assumingMemoryBound(to: uv_pipe_t.self), 0)
      : uv_tcp_init(loop, client.assumingMemoryBound(to: uv_tcp_t.self))
    guard rc == 0 else {
      client.deallocate()
      return
    }
    let stream = client.assumingMemoryBound(to: uv_stream_t.self)
    if uv_accept(listener, stream) != 0 {
      uv_close(asHandle(stream)) { h in UnsafeMutableRawPointer(h!).deallocate() }
      return
    }
    if !isPipe { uv_tcp_nodelay(client.assumingMemoryBound(to: uv_tcp_t.self), 1) }
    let id = ConnectionID(rawValue: nextID)
    nextID += 1
    let full = connections.count >= configuration.maxConnections
    let connection = Connection(id: id, stream: stream, server: self)
    connections[id] = connection
    count {
      $0.accepted += 1
      $0.open += 1
    }
    if full {
      count { $0.rejected += 1 }
      connection.reject(
        Reply.error(
          id: nil, code: .overloaded,
          message: "too many connections (at most \(configuration.maxConnections)); try again later"))
    } else {
      connection.startReading()
    }
  }

  /// Loop thread: the connection's handles are all closed.
  func remove(_ connection: Connection, reason: CloseReason) {
    connections[connection.id] = nil
    count { $0.open -= 1 }
    onClose?(connection.id, reason)
  }
}
