#if canImport(Glibc)
  import Glibc
#endif

/// A small blocking client of the JSON-lines protocol, for the command line and load tests: one
/// connection over TCP (`HOST:PORT`, `[::1]:PORT`) or a Unix socket (a path with a `/`, or
/// `@name`); send request lines, read reply lines. One thread at a time.
public final class LineClient {
  /// The address as given.
  public let address: String
  private let fd: Int32
  private var buffer: [UInt8]  // (≤ maxLineBytes + chunk) received, not yet returned
  private var start = 0  // first unread byte of `buffer`
  private var scanned = 0  // bytes from `start` known to hold no '\n'
  private var closed = false
  private let chunk: UnsafeMutableRawBufferPointer  // (64 KiB) what one recv gets
  /// Longest reply line accepted.
  public var maxLineBytes = 64 << 20

  /// Whether `address` names a Unix socket (it contains '/' or starts with '@') rather than
  /// `HOST:PORT`.
  public static func isUnixAddress(_ address: String) -> Bool {
    address.contains("/") || address.hasPrefix("@")
  }

  /// Connects. `timeoutSeconds` bounds each wait for a reply (0: wait as long as it takes).
  public init(connect address: String, timeoutSeconds: Double = 0) throws {
    self.address = address
    let target = try Self.isUnixAddress(address) ? SocketAddress.unix(address) : SocketAddress.tcp(address)
    fd = try Socket.open(family: target.family, type: Int32(SOCK_STREAM.rawValue), for: address)
    do {
      try Socket.connect(fd, to: target)
      if target.family != AF_UNIX { Socket.setNoDelay(fd) }
      if timeoutSeconds > 0 { try Socket.setReceiveTimeout(fd, seconds: timeoutSeconds) }
    } catch {
      Socket.close(fd)
      throw error
    }
    buffer = []
    buffer.reserveCapacity(64 << 10)
    chunk = .allocate(byteCount: 64 << 10, alignment: 16)
  }

  deinit {
    close()
    chunk.deallocate()
  }

  /// Closes the connection (the server sees EOF). Idempotent.
  public func close() {
    if !closed { Socket.close(fd) }
    closed = true
  }

  /// Sends one request: `object` as compact JSON and `\n`.
  public func send(_ object: JSONObject) throws {
    var line: [UInt8] = []
    JSONWriter.write(.object(object), into: &line)
    line.append(0x0A)
    try send(bytes: line)
  }

  /// Sends bytes as they are (one or more lines, each ending in `\n`).
  public func send(bytes: [UInt8]) throws {
    try bytes.withUnsafeBytes { try Socket.sendAll(fd, $0, what: "send to \(address)") }
  }

  /// Tells the server nothing more will be sent (it reads EOF); replies still arrive.
  public func finishSending() throws {
    try Socket.shutdownWrite(fd, what: "shutdown \(address)")
  }

  /// The next reply line without its `\n`; nil when the server closed the connection.
  public func readLine() throws -> ArraySlice<UInt8>? {
    while true {
      if let nl = buffer[(start + scanned)...].firstIndex(of: 0x0A) {
        let line = buffer[start..<nl]
        start = nl + 1
        scanned = 0
        return line
      }
      scanned = buffer.count - start
      if scanned > maxLineBytes {
        throw SocketError("read from \(address)", code: EMSGSIZE, message: "a reply line is over \(maxLineBytes) bytes")
      }
      // Drop what was returned before reading more (amortized: only once it is half the buffer).
      if start > 0 && start >= buffer.count / 2 {
        buffer.removeFirst(start)
        start = 0
      }
      let n = try Socket.receive(fd, into: chunk, what: "read from \(address)")
      buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
      if n == 0 {
        if buffer.count > start {  // a last line without '\n'
          let line = buffer[start...]
          start = buffer.count
          return line
        }
        return nil
      }
    }
  }

  /// The next reply line parsed as a JSON object; nil when the server closed the connection.
  /// Throws `SocketError` on a line that is not a JSON object.
  public func readReply() throws -> JSONObject? {
    guard let line = try readLine() else { return nil }
    do {
      guard case .object(let o) = try JSONParser.parse(line) else {
        throw SocketError("read from \(address)", code: EPROTO, message: "a reply line is not a JSON object")
      }
      return o
    } catch let e as JSONParseError {
      throw SocketError("read from \(address)", code: EPROTO, message: "a reply line is not JSON: \(e.message)")
    }
  }
}
