import CLibUV

/// One client connection. Loop thread only: the server's handler gets it to answer on; other
/// threads use `LineServer.send(_:to:)` with its `id`.
///
/// Input: bytes are read into one fixed buffer and appended to `pending`, which holds at most
/// one unfinished line (≤ `maxLineBytes`) plus one read chunk; each complete line is decoded
/// and handled. Output: each line is copied into a libuv write request; when libuv's unsent
/// queue passes the soft bound reading stops (so a client that does not read cannot make us
/// buffer its replies), below half of it reading resumes, past the hard bound the connection
/// closes.
public final class Connection {
  public let id: ConnectionID
  unowned let server: LineServer
  // Raw memory of a uv_tcp_t or uv_pipe_t; `data` points at self (unretained: the server's
  // `connections` holds self until both handles' close callbacks have run).
  let stream: UnsafeMutablePointer<uv_stream_t>
  private let timer: UnsafeMutablePointer<uv_timer_t>
  private var readBuffer: UnsafeMutableRawBufferPointer?  // (readChunkBytes) given to libuv on each read
  private var pending: [UInt8] = []  // (≤ maxLineBytes + readChunkBytes) unread input
  private var scanFrom = 0  // bytes of `pending` known to hold no '\n'

  private enum State { case open, draining, closing }
  private var state = State.open
  private var reading = false
  private var paused = false
  /// The client sent EOF: nothing more to read, replies may still be coming.
  private var inputEnded = false
  private var openHandles = 2
  private var closeReason = CloseReason.normal

  init(id: ConnectionID, stream: UnsafeMutablePointer<uv_stream_t>, server: LineServer) {
    self.id = id
    self.stream = stream
    self.server = server
    timer = .allocate(capacity: 1)
    uv_timer_init(server.loop, timer)
    let me = Unmanaged.passUnretained(self).toOpaque()
    stream.pointee.data = me
    timer.pointee.data = me
  }

  private static func from(_ data: UnsafeMutableRawPointer?) -> Connection {
    Unmanaged<Connection>.fromOpaque(data!).takeUnretainedValue()
  }

  /// Bytes written to libuv that the kernel has not taken yet.
  public var queuedBytes: Int { Int(uv_stream_get_write_queue_size(stream)) }

  // MARK: reading

  func startReading() {
    readBuffer = .allocate(byteCount: server.configuration.readChunkBytes, alignment: 16)
    armIdleTimer()
    resumeReading()
  }

  private func resumeReading() {
    guard state == .open, !reading, !paused, !inputEnded else { return }
    let rc = uv_read_start(
      stream,
      { handle, _, buf in
        let c = Connection.from(handle!.pointee.data)
        let b = c.readBuffer!
        buf!.pointee = uv_buf_init(b.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(b.count))
      },
      { handle, nread, _ in
        Connection.from(handle!.pointee.data).didRead(nread)
      })
    if rc < 0 {
      close(.error(UVError(code: rc, operation: "uv_read_start").description))
      return
    }
    reading = true
  }

  private func stopReading() {
    if reading { uv_read_stop(stream) }
    reading = false
  }

  private func didRead(_ nread: Int) {
    if nread == 0 { return }  // EAGAIN
    if nread < 0 {
      stopReading()
      if Int32(nread) == uvEOF {
        // The client is done sending: a last line without '\n' still counts.
        if !pending.isEmpty { pending.append(0x0A) }
        processLines()
        guard state == .open else { return }
        if let onEnd = server.onEndOfInput {
          inputEnded = true
          onEnd(id)
        } else {
          closeAfterFlush()
        }
      } else {
        close(.error(UVError(code: Int32(nread), operation: "read").description))
      }
      return
    }
    armIdleTimer()
    pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: readBuffer![0..<nread]))
    processLines()
  }

  /// Handles each complete line in `pending` while the connection is open and not paused.
  private func processLines() {
    let maxLine = server.configuration.maxLineBytes
    var start = 0
    defer {
      if state != .open {
        pending = []
        scanFrom = 0
      } else if start > 0 {
        pending.removeFirst(start)
        scanFrom = max(0, scanFrom - start)
      }
    }
    while state == .open && !paused {
      guard let nl = pending[max(start, scanFrom)...].firstIndex(of: 0x0A) else {
        scanFrom = pending.count
        if pending.count - start > maxLine { tooLarge() }
        return
      }
      var end = nl
      if end - start > maxLine {
        tooLarge()
        return
      }
      if end > start, pending[end - 1] == 0x0D { end -= 1 }
      let line = pending[start..<end]
      start = nl + 1
      scanFrom = start
      if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
      handle(line)
    }
  }

  private func handle(_ line: ArraySlice<UInt8>) {
    server.count { $0.requests += 1 }
    switch server.decoder.decode(line) {
    case .success(let request): server.handler(request, self)
    case .failure(let error): send(error.reply)
    }
  }

  private func tooLarge() {
    server.count { $0.tooLarge += 1 }
    closeReason = .tooLarge
    send(
      .error(
        id: nil, code: .tooLarge,
        message: "line longer than \(server.configuration.maxLineBytes) bytes; the connection is closed"))
    closeAfterFlush()
  }

  // MARK: writing

  /// Sends one reply line. Loop thread only (from the handler); other threads use
  /// `LineServer.send(_:to:)`. Does nothing once the connection is closing.
  public func send(_ reply: Reply) {
    if case .error = reply { server.count { $0.errorReplies += 1 } }
    send(line: reply.line)
  }

  /// Sends raw bytes (one or more complete lines).
  func send(line: [UInt8]) {
    guard state != .closing, !line.isEmpty else { return }
    let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
    let storage = UnsafeMutableRawPointer.allocate(byteCount: line.count, alignment: 1)
    line.withUnsafeBytes { storage.copyMemory(from: $0.baseAddress!, byteCount: line.count) }
    req.pointee.data = storage
    var buf = uv_buf_init(storage.assumingMemoryBound(to: CChar.self), UInt32(line.count))
    let rc = uv_write(req, stream, &buf, 1) { req, status in
      let r = req!
      r.pointee.data.deallocate()
      let c = Connection.from(r.pointee.handle.pointee.data)
      r.deallocate()
      c.didWrite(status)
    }
    if rc < 0 {
      storage.deallocate()
      req.deallocate()
      close(.error(UVError(code: rc, operation: "write").description))
      return
    }
    let queued = queuedBytes
    server.count { $0.peakQueuedBytes = max($0.peakQueuedBytes, queued) }
    if queued > server.configuration.hardOutputBytes {
      server.count { $0.slowReaderClosed += 1 }
      close(.slowReader)
    } else if queued > server.configuration.softOutputBytes && !paused && state == .open {
      paused = true
      server.count { $0.paused += 1 }
      stopReading()
    }
  }

  private func didWrite(_ status: Int32) {
    guard state != .closing else { return }
    if status < 0 {
      close(.error(UVError(code: status, operation: "write").description))
      return
    }
    armIdleTimer()
    if paused && queuedBytes <= server.configuration.softOutputBytes / 2 {
      paused = false
      processLines()  // lines that arrived before the pause
      resumeReading()
    }
  }

  // MARK: closing

  /// Sends `reply` and closes once it is written (a connection over `maxConnections`).
  func reject(_ reply: Reply) {
    closeReason = .rejected
    armIdleTimer()
    send(reply)
    closeAfterFlush()
  }

  /// Stops reading and closes once everything queued is written (or the idle timer fires).
  func closeAfterFlush() {
    guard state == .open else { return }
    state = .draining
    stopReading()
    let req = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
    let rc = uv_shutdown(req, stream) { req, _ in
      let r = req!
      let c = Connection.from(r.pointee.handle.pointee.data)
      r.deallocate()
      c.close(c.closeReason)
    }
    if rc < 0 {
      req.deallocate()
      close(closeReason)
    }
  }

  /// Closes now; unsent output is dropped. Idempotent.
  public func close(_ reason: CloseReason = .normal) {
    guard state != .closing else { return }
    state = .closing
    if case .normal = reason {} else { closeReason = reason }
    stopReading()
    uv_timer_stop(timer)
    let closed: uv_close_cb = { h in Connection.from(h!.pointee.data).handleClosed() }
    uv_close(asHandle(stream), closed)
    uv_close(asHandle(timer), closed)
  }

  private func handleClosed() {
    openHandles -= 1
    guard openHandles == 0 else { return }
    UnsafeMutableRawPointer(stream).deallocate()
    timer.deallocate()
    readBuffer?.deallocate()
    readBuffer = nil
    server.remove(self, reason: closeReason)
  }

  // MARK: idle timeout

  fileprivate func armIdleTimer() {
    let ms = server.configuration.idleTimeoutMilliseconds
    guard ms > 0, state != .closing else { return }
    uv_timer_start(
      timer,
      { t in
        let c = Connection.from(t!.pointee.data)
        if c.state == .open, c.server.isAwaitingReplies?(c.id) == true {
          c.armIdleTimer()  // not idle: a reply is still to come
          return
        }
        c.server.count { $0.idleClosed += 1 }
        c.close(.idle)
      }, ms, 0)
  }
}
