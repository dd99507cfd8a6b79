import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A failed socket system call (outside libuv): the call, what it was for, and errno.
public struct SocketError: Error, Equatable, CustomStringConvertible {
  /// What was being done, e.g. `connect 127.0.0.1:7411`.
  public let operation: String
  /// errno, or 0 when the failure is not a system error (`message` says what).
  public let code: Int32
  public let message: String

  public init(_ operation: String, code: Int32, message: String? = nil) {
    self.operation = operation
    self.code = code
    self.message = message ?? String(cString: strerror(code))
  }

  public var description: String { "\(operation): \(message)" }
}

/// Where a socket connects or sends: a resolved IP address, or a Unix socket path (`@name`: the
/// Linux abstract namespace).
struct SocketAddress {
  var storage = sockaddr_storage()
  var length: socklen_t = 0
  /// As the user wrote it, for messages.
  var text: String

  var family: Int32 { Int32(storage.ss_family) }

  /// A Unix socket path; a leading `@` stands for the abstract namespace's leading NUL.
  static func unix(_ path: String) throws -> SocketAddress {
    var bytes = Array(path.utf8)
    let abstract = bytes.first == UInt8(ascii: "@")
    if abstract { bytes[0] = 0 }
    var a = SocketAddress(text: path)
    let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
    guard !bytes.isEmpty, bytes.count < capacity else {
      throw SocketError(
        path, code: ENAMETOOLONG, message: "a Unix socket path must be 1 to \(capacity - 1) bytes long")
    }
    withUnsafeMutableBytes(of: &a.storage) { raw in
      raw.storeBytes(of: sa_family_t(AF_UNIX), toByteOffset: 0, as: sa_family_t.self)
      let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
      for (k, b) in bytes.enumerated() { raw[pathOffset + k] = b }
    }
    let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
    // Abstract names are exactly their bytes; paths carry their NUL.
    a.length = socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1))
    return a
  }

  /// `HOST:PORT` (`[v6]:PORT`), HOST a literal address or a name resolved by getaddrinfo; the
  /// first stream address wins.
  static func tcp(_ hostPort: String) throws -> SocketAddress {
    let (host, port) = try splitHostPort(hostPort)
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_family = AF_UNSPEC
    var result: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(host, String(port), &hints, &result)
    guard rc == 0, let first = result else {
      throw SocketError("resolve \(hostPort)", code: 0, message: String(cString: gai_strerror(rc)))
    }
    defer { freeaddrinfo(result) }
    var a = SocketAddress(text: hostPort)
    withUnsafeMutableBytes(of: &a.storage) { raw in
      raw.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
    }
    a.length = first.pointee.ai_addrlen
    return a
  }

  /// `HOST:PORT` or `[HOST]:PORT` → (HOST, PORT), as `--listen` reads it.
  static func splitHostPort(_ text: String) throws -> (String, UInt16) {
    do { return try LineServer.splitHostPort(text) } catch {
      throw SocketError(text, code: 0, message: "expected HOST:PORT, as in 127.0.0.1:7411 or [::1]:7411")
    }
  }

  /// A NUL-terminated C buffer as text.
  private static func text(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// A socket's own address as text: `HOST:PORT`, `[v6]:PORT`, a path, or `@name`.
  static func describe(_ storage: sockaddr_storage, length: socklen_t) -> String {
    var s = storage
    return withUnsafeBytes(of: &s) { raw -> String in
      switch Int32(storage.ss_family) {
      case AF_INET:
        var a = raw.load(as: sockaddr_in.self)
        var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &a.sin_addr, &buf, socklen_t(buf.count))
        return "\(text(buf)):\(UInt16(bigEndian: a.sin_port))"
      case AF_INET6:
        var a = raw.load(as: sockaddr_in6.self)
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        inet_ntop(AF_INET6, &a.sin6_addr, &buf, socklen_t(buf.count))
        return "[\(text(buf))]:\(UInt16(bigEndian: a.sin6_port))"
      case AF_UNIX:
        let off = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        let n = max(0, Int(length) - off)
        var bytes = Array(raw[off..<min(off + n, raw.count)])
        if bytes.first == 0 { return "@" + String(decoding: bytes.dropFirst(), as: UTF8.self) }
        if let nul = bytes.firstIndex(of: 0) { bytes = Array(bytes[..<nul]) }
        return String(decoding: bytes, as: UTF8.self)
      default: return "family \(storage.ss_family)"
      }
    }
  }
}

/// The socket system calls lorad makes outside libuv (systemd notify and socket activation, the
/// blocking client): each wraps one call, retries on EINTR, and turns -1 into `SocketError`.
enum Socket {
  /// A new close-on-exec socket.
  static func open(family: Int32, type: Int32, for what: String) throws -> Int32 {
    let fd = Glibc.socket(family, type | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SocketError("socket for \(what)", code: errno) }
    return fd
  }

  static func close(_ fd: Int32) { _ = Glibc.close(fd) }

  /// Half-closes: the peer reads EOF, replies can still be read.
  static func shutdownWrite(_ fd: Int32, what: @autoclosure () -> String) throws {
    if Glibc.shutdown(fd, Int32(SHUT_WR)) != 0 { throw SocketError(what(), code: errno) }
  }

  static func connect(_ fd: Int32, to address: SocketAddress) throws {
    var a = address
    var rc: Int32
    repeat {
      rc = withUnsafePointer(to: &a.storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, a.length) }
      }
    } while rc != 0 && errno == EINTR
    // EINTR during connect leaves it completing in the background; EISCONN then means done.
    if rc != 0 && errno != EISCONN { throw SocketError("connect \(address.text)", code: errno) }
  }

  /// Writes all of `bytes` (a stream socket), without SIGPIPE.
  static func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, what: @autoclosure () -> String) throws {
    var off = 0
    while off < bytes.count {
      let n = Glibc.send(fd, bytes.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL))
      if n < 0 {
        if errno == EINTR { continue }
        throw SocketError(what(), code: errno)
      }
      off += n
    }
  }

  /// One datagram to `address`.
  static func sendDatagram(_ fd: Int32, _ bytes: [UInt8], to address: SocketAddress) throws {
    var a = address
    var n: Int
    repeat {
      n = bytes.withUnsafeBytes { b in
        withUnsafePointer(to: &a.storage) {
          $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.sendto(fd, b.baseAddress, b.count, Int32(MSG_NOSIGNAL), $0, a.length)
          }
        }
      }
    } while n < 0 && errno == EINTR
    if n < 0 { throw SocketError("send to \(address.text)", code: errno) }
  }

  /// Reads what is there (blocking until something is); 0 at end of stream.
  static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, what: @autoclosure () -> String)
    throws -> Int
  {
    while true {
      let n = Glibc.recv(fd, buffer.baseAddress, buffer.count, 0)
      if n >= 0 { return n }
      if errno == EINTR { continue }
      if errno == EAGAIN || errno == EWOULDBLOCK {
        throw SocketError(what(), code: ETIMEDOUT, message: "no reply within the time limit")
      }
      throw SocketError(what(), code: errno)
    }
  }

  /// Makes `recv` give up after `seconds` (0: wait forever).
  static func setReceiveTimeout(_ fd: Int32, seconds: Double) throws {
    var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
    if setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size)) != 0 {
      throw SocketError("setsockopt SO_RCVTIMEO", code: errno)
    }
  }

  static func setNoDelay(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
  }

  static func setCloseOnExec(_ fd: Int32) throws {
    let flags = fcntl(fd, F_GETFD)
    guard flags >= 0, fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 else {
      throw SocketError("fcntl(\(fd), F_SETFD, FD_CLOEXEC)", code: errno)
    }
  }

  /// What an inherited descriptor is: its family, whether it is a listening stream socket, and
  /// its address as text. Throws when `fd` is not a socket at all.
  static func inspect(_ fd: Int32) throws -> (family: Int32, listeningStream: Bool, address: String) {
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw SocketError("fstat(\(fd))", code: errno) }
    guard st.st_mode & S_IFMT == S_IFSOCK else {
      throw SocketError("fd \(fd)", code: ENOTSOCK, message: "not a socket")
    }
    var type: Int32 = 0
    var accepting: Int32 = 0
    var len = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 else {
      throw SocketError("getsockopt(\(fd), SO_TYPE)", code: errno)
    }
    len = socklen_t(MemoryLayout<Int32>.size)
    guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 else {
      throw SocketError("getsockopt(\(fd), SO_ACCEPTCONN)", code: errno)
    }
    var storage = sockaddr_storage()
    var alen = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let rc = withUnsafeMutablePointer(to: &storage) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &alen) }
    }
    guard rc == 0 else { throw SocketError("getsockname(\(fd))", code: errno) }
    let stream = type == Int32(SOCK_STREAM.rawValue)
    return (Int32(storage.ss_family), stream && accepting != 0, SocketAddress.describe(storage, length: alen))
  }
}
