import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The sd_notify protocol, by hand: each state change is one datagram of `KEY=VALUE` lines sent
/// to the Unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
/// `lorad.service` is `Type=notify`: systemd waits for `READY=1`, expects `WATCHDOG=1` at least
/// every `WatchdogSec`, and reads `STOPPING=1` and `STATUS=…`.
///
/// Threads: every property is immutable and `sendto` on one datagram socket is safe from any
/// thread, so one instance may be shared.
public final class SystemdNotify: Sendable {
  /// The socket path as given in `$NOTIFY_SOCKET`.
  public let socketPath: String
  /// How often systemd expects `WATCHDOG=1`: `$WATCHDOG_USEC`, when `$WATCHDOG_PID` is unset or
  /// names this process; nil when the watchdog is off.
  public let watchdogInterval: Duration?
  private let address: SocketAddress
  private let fd: Int32

  /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` from `environment`; nil when
  /// not started by systemd with notify access (no `NOTIFY_SOCKET`). Throws when the socket
  /// cannot be created or the path is unusable.
  public init?(environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid()) throws {
    guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
    guard path.hasPrefix("/") || path.hasPrefix("@") else {
      throw SocketError("NOTIFY_SOCKET=\(path)", code: EINVAL, message: "must be an absolute path or @abstract name")
    }
    socketPath = path
    address = try SocketAddress.unix(path)
    watchdogInterval = Self.watchdog(environment: environment, pid: pid)
    fd = try Socket.open(family: AF_UNIX, type: Int32(SOCK_DGRAM.rawValue), for: "NOTIFY_SOCKET")
  }

  deinit { Socket.close(fd) }

  /// `$WATCHDOG_USEC` as a duration if it is meant for `pid`.
  static func watchdog(environment: [String: String], pid: Int32) -> Duration? {
    guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
    if let owner = environment["WATCHDOG_PID"], !owner.isEmpty {
      guard Int32(owner) == pid else { return nil }
    }
    return .microseconds(Int64(clamping: usec))
  }

  /// How often to send `WATCHDOG=1`: half the interval, as sd_watchdog_enabled(3) advises.
  public var pingInterval: Duration? { watchdogInterval.map { $0 / 2 } }

  /// Sends one datagram of `KEY=VALUE` lines, exactly as given (e.g. `"READY=1\nSTATUS=serving"`).
  public func send(_ state: String) throws {
    try Socket.sendDatagram(fd, Array(state.utf8), to: address)
  }

  /// `READY=1` (with `STATUS=` when given): startup is finished and lorad accepts requests.
  public func ready(status: String? = nil) throws {
    try send("READY=1" + (status.map { "\nSTATUS=" + Self.oneLine($0) } ?? ""))
  }

  /// `STOPPING=1` (with `STATUS=` when given): shutdown began.
  public func stopping(status: String? = nil) throws {
    try send("STOPPING=1" + (status.map { "\nSTATUS=" + Self.oneLine($0) } ?? ""))
  }

  /// `RELOADING=1`: a reload (SIGHUP) began; send `ready()` when it is done.
  public func reloading() throws { try send("RELOADING=1") }

  /// `WATCHDOG=1`: lorad is alive. Send it from the code whose progress it vouches for.
  public func watchdog() throws { try send("WATCHDOG=1") }

  /// `STATUS=…`: a one-line status `systemctl status` shows.
  public func status(_ text: String) throws { try send("STATUS=" + Self.oneLine(text)) }

  /// A value must not break the line format: newlines become spaces.
  static func oneLine(_ s: String) -> String {
    String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
  }

  /// Starts a thread that sends `WATCHDOG=1` every `pingInterval` while `healthy()` says so; a
  /// stuck loop or scheduler makes `healthy()` false and systemd restarts lorad. Returns nil
  /// when the watchdog is off. The thread runs until `stop` of the returned handle.
  public func startWatchdog(healthy: @escaping @Sendable () -> Bool) -> WatchdogPinger? {
    guard let interval = pingInterval else { return nil }
    let pinger = WatchdogPinger()
    let thread = Thread { [self] in
      while !pinger.wait(interval) {
        if healthy() { try? watchdog() }
      }
    }
    thread.name = "lorad-watchdog"
    thread.start()
    return pinger
  }
}

/// Stops the thread `SystemdNotify.startWatchdog` started.
public final class WatchdogPinger: Sendable {
  private let stopped = DispatchSemaphore(value: 0)

  /// Ends the pinging thread (it exits at once).
  public func stop() { stopped.signal() }

  /// True when stopped during `interval`.
  func wait(_ interval: Duration) -> Bool {
    let (s, atto) = interval.components
    let ns = Int(s) * 1_000_000_000 + Int(atto / 1_000_000_000)
    if stopped.wait(timeout: .now() + .nanoseconds(ns)) == .success {
      stopped.signal()  // stay stopped for a later wait
      return true
    }
    return false
  }
}
