/// What the server listens on and the bounds it keeps. Every buffer it holds is bounded by one
/// of these: a connection's unread input by `maxLineBytes + readChunkBytes`, its unsent output by
/// `hardOutputBytes` (plus the one reply that crossed it), other threads' pending sends by
/// `maxOutboxBytes`.
public struct ServerConfiguration: Sendable {
  /// `HOST:PORT` (`[::1]:7411` for IPv6); port 0 picks a free one (see `LineServer.tcpPort`).
  /// nil: no TCP listener.
  public var listen: String? = "127.0.0.1:7411"
  /// A Unix socket path; nil: no Unix listener. A stale socket file there is removed; a live
  /// one (something accepts on it) or a non-socket file is an error.
  public var socketPath: String?
  /// Listening sockets passed by systemd (`ListenFDs.take()`), served in addition to `listen` and
  /// `socketPath` (set those to nil when socket-activated). The server owns and closes them.
  public var inheritedListeners: [InheritedListener] = []
  /// Permissions of the socket file.
  public var socketMode: UInt32 = 0o660
  /// Longest request line, without its `\n`. A longer line gets `too_large` and the connection
  /// closes.
  public var maxLineBytes = 1 << 20
  /// Unsent output past which the connection stops being read (resumed below half of it).
  public var softOutputBytes = 1 << 20
  /// Unsent output past which the connection is closed.
  public var hardOutputBytes = 16 << 20
  /// A connection with no traffic either way for this long is closed; 0 turns it off.
  public var idleTimeoutMilliseconds: UInt64 = 300_000
  /// Connections past this get an `overloaded` error line and are closed.
  public var maxConnections = 1_024
  /// Bytes other threads may have queued for the loop before `send` refuses.
  public var maxOutboxBytes = 64 << 20
  public var backlog: Int32 = 511
  /// Size of each connection's read buffer.
  public var readChunkBytes = 64 << 10
  public var limits = RequestLimits()

  public init() {}
}

/// Identifies one accepted connection for the server's lifetime (never reused).
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
  public let rawValue: UInt64
  public init(rawValue: UInt64) { self.rawValue = rawValue }
  public var description: String { "c\(rawValue)" }
}

/// Why a connection was closed (passed to `LineServer`'s `onClose`).
public enum CloseReason: Sendable, Equatable {
  /// The client closed its side, or the owner asked (`close(_:)`), or the server stopped.
  case normal
  case tooLarge
  case idle
  /// Its unsent output passed `hardOutputBytes`.
  case slowReader
  /// Over `maxConnections`.
  case rejected
  /// A socket error, with libuv's message.
  case error(String)
}

/// Running totals, read with `LineServer.counters`.
public struct ServerCounters: Sendable, Equatable {
  public var accepted = 0
  public var open = 0
  public var rejected = 0
  public var requests = 0
  public var errorReplies = 0
  public var tooLarge = 0
  public var idleClosed = 0
  public var slowReaderClosed = 0
  /// Times a connection stopped being read because its output passed the soft bound.
  public var paused = 0
  /// Largest unsent output any connection reached (bytes).
  public var peakQueuedBytes = 0
}

/// Errors setting up the listeners. Socket-level failures are `UVError`s.
public enum ServerError: Error, Equatable, CustomStringConvertible {
  case badListenAddress(String)
  case socketInUse(String)
  case notASocket(String)
  case socketPathTooLong(String)
  case socketSetup(path: String, String)
  case alreadyStarted

  public var description: String {
    switch self {
    case .badListenAddress(let a): return "--listen \(a): expected HOST:PORT, as in 127.0.0.1:7411 or [::1]:7411"
    case .socketInUse(let p): return "\(p): another server is accepting on this socket; stop it or pick another path"
    case .notASocket(let p): return "\(p) exists and is not a socket; remove it or pick another path"
    case .socketPathTooLong(let p): return "\(p): a Unix socket path must be under 108 bytes; use a shorter path"
    case .socketSetup(let p, let m): return "\(p): \(m)"
    case .alreadyStarted: return "the server was already started"
    }
  }
}
