import Foundation
import Server

#if canImport(Glibc)
  import Glibc
#endif

/// A blocking POSIX socket client for the end-to-end tests (loopback only), with a receive
/// timeout so a missing reply fails the test instead of hanging it.
final class TestClient {
  let fd: Int32
  private var buffer: [UInt8] = []

  /// Seconds a read waits before giving up.
  var timeout: Int = 3 {
    didSet { setTimeout() }
  }

  init(tcpPort: Int, receiveBufferBytes: Int32? = nil) throws {
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    if var size = receiveBufferBytes {
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(tcpPort).bigEndian
    addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard rc == 0 else {
      Glibc.close(fd)
      throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
    }
    setTimeout()
  }

  init(unixPath: String) throws {
    fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      for (k, b) in unixPath.utf8.enumerated() { raw[k] = b }
    }
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
    guard rc == 0 else {
      Glibc.close(fd)
      throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
    }
    setTimeout()
  }

  private func setTimeout() {
    var tv = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
  }

  deinit { Glibc.close(fd) }

  /// Closes the sending side (the server sees EOF; replies can still come).
  func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

  func send(_ text: String) { send(Array(text.utf8)) }

  func send(_ bytes: [UInt8]) {
    var off = 0
    while off < bytes.count {
      let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if n <= 0 { return }
      off += n
    }
  }

  /// The next line without its `\n`; nil at end of stream, on an error or after the timeout.
  func readLine() -> String? {
    while true {
      if let nl = buffer.firstIndex(of: 0x0A) {
        let line = String(decoding: buffer[..<nl], as: UTF8.self)
        buffer.removeFirst(nl + 1)
        return line
      }
      var chunk = [UInt8](repeating: 0, count: 65536)
      let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if n <= 0 { return nil }
      buffer.append(contentsOf: chunk[..<n])
    }
  }

  /// The next line parsed as a JSON object.
  func readReply() -> JSONObject? {
    guard let line = readLine(), case .object(let o)? = try? JSONParser.parse(Array(line.utf8)) else { return nil }
    return o
  }

  /// True when the server has closed the connection (EOF or reset) within the timeout.
  func readsEOF() -> Bool {
    while true {
      var chunk = [UInt8](repeating: 0, count: 65536)
      let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
      if n == 0 { return true }
      if n < 0 { return errno == ECONNRESET }
    }
  }
}
