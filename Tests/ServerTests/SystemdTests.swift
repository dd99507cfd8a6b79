import Foundation
import Server
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A datagram socket the test binds and reads, playing systemd's notify socket.
final class NotifyReceiver {
  let fd: Int32
  /// As `$NOTIFY_SOCKET` spells it.
  let name: String

  init(abstract: Bool) throws {
    let tag = "lorad-notify-\(UUID().uuidString.prefix(8))"
    name = abstract ? "@" + tag : NSTemporaryDirectory() + tag + ".sock"
    fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(name.utf8)
    if abstract { bytes[0] = 0 }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (k, b) in bytes.enumerated() { raw[k] = b } }
    let len = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1)
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(len)) }
    }
    guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    var tv = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
  }

  deinit {
    Glibc.close(fd)
    if !name.hasPrefix("@") { unlink(name) }
  }

  /// The next datagram as text; nil after the timeout.
  func receive(timeoutMilliseconds: Int = 2000) -> String? {
    var tv = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var buf = [UInt8](repeating: 0, count: 4096)
    let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    return n < 0 ? nil : String(decoding: buf[..<n], as: UTF8.self)
  }
}

@Suite struct SystemdNotifyTests {
  @Test(arguments: [false, true])
  func datagramsReachTheNotifySocket(abstract: Bool) throws {
    let receiver = try NotifyReceiver(abstract: abstract)
    let notify = try #require(try SystemdNotify(environment: ["NOTIFY_SOCKET": receiver.name]))
    try notify.ready(status: "serving on 127.0.0.1:7411\nnext")
    #expect(receiver.receive() == "READY=1\nSTATUS=serving on 127.0.0.1:7411 next")
    try notify.watchdog()
    #expect(receiver.receive() == "WATCHDOG=1")
    try notify.status("3 requests in flight")
    #expect(receiver.receive() == "STATUS=3 requests in flight")
    try notify.stopping()
    #expect(receiver.receive() == "STOPPING=1")
    try notify.reloading()
    #expect(receiver.receive() == "RELOADING=1")
  }

  @Test func absentOrBadNotifySocket() throws {
    #expect(try SystemdNotify(environment: [:]) == nil)
    #expect(try SystemdNotify(environment: ["NOTIFY_SOCKET": ""]) == nil)
    #expect(throws: SocketError.self) { try SystemdNotify(environment: ["NOTIFY_SOCKET": "relative/path"]) }
    let nobody = try #require(try SystemdNotify(environment: ["NOTIFY_SOCKET": "/nonexistent/lorad-notify.sock"]))
    #expect(throws: SocketError.self) { try nobody.ready() }
  }

  @Test func watchdogIntervalIsForThisProcessOnly() throws {
    let path = ["NOTIFY_SOCKET": "/nonexistent/x.sock"]
    let pid = getpid()
    func interval(_ env: [String: String]) throws -> Duration? {
      try SystemdNotify(environment: path.merging(env) { a, _ in a }, pid: pid)?.watchdogInterval
    }
    #expect(try interval(["WATCHDOG_USEC": "30000000"]) == .seconds(30))
    #expect(try interval(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(pid)"]) == .seconds(30))
    #expect(try interval(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(pid + 1)"]) == nil)
    #expect(try interval(["WATCHDOG_USEC": "0"]) == nil)
    #expect(try interval(["WATCHDOG_USEC": "soon"]) == nil)
    #expect(try interval([:]) == nil)
    let n = try #require(try SystemdNotify(environment: path.merging(["WATCHDOG_USEC": "1000000"]) { a, _ in a }))
    #expect(n.pingInterval == .milliseconds(500))
  }

  @Test func watchdogThreadPingsWhileHealthy() throws {
    let receiver = try NotifyReceiver(abstract: true)
    let healthy = Flag(true)
    let notify = try #require(
      try SystemdNotify(environment: ["NOTIFY_SOCKET": receiver.name, "WATCHDOG_USEC": "100000"]))
    let pinger = try #require(notify.startWatchdog { healthy.value })
    defer { pinger.stop() }
    #expect(receiver.receive() == "WATCHDOG=1")
    #expect(receiver.receive() == "WATCHDOG=1")
    healthy.value = false
    while receiver.receive(timeoutMilliseconds: 120) != nil {}  // drain one in flight
    #expect(receiver.receive(timeoutMilliseconds: 300) == nil)
    healthy.value = true
    #expect(receiver.receive() == "WATCHDOG=1")
    pinger.stop()
    while receiver.receive(timeoutMilliseconds: 120) != nil {}
    #expect(receiver.receive(timeoutMilliseconds: 300) == nil)
    #expect(try SystemdNotify(environment: ["NOTIFY_SOCKET": receiver.name])?.startWatchdog { true } == nil)
  }
}

/// A Bool shared with the watchdog thread.
final class Flag: @unchecked Sendable {  // guarded by lock
  private let lock = NSLock()
  private var _value: Bool
  init(_ v: Bool) { _value = v }
  var value: Bool {
    get { lock.withLock { _value } }
    set { lock.withLock { _value = newValue } }
  }
}
