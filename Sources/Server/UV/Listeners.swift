import CLibUV
import Foundation

/// Binding the TCP and Unix listeners (on the thread in `start()`, before the loop runs).
extension LineServer {
  private static let onConnection: uv_connection_cb = { listener, status in
    let server = Unmanaged<LineServer>.fromOpaque(listener!.pointee.data).takeUnretainedValue()
    server.accept(from: listener!, status: status)
  }

  /// Binds `HOST:PORT` and returns the bound port.
  func listenTCP(_ address: String) throws -> Int {
    let (host, port) = try Self.splitHostPort(address)
    var storage = sockaddr_storage()
    try withUnsafeMutableBytes(of: &storage) { raw in
      let rc4 = uv_ip4_addr(host, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self))
      if rc4 != 0 {
        let rc6 = uv_ip6_addr(host, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self))
        if rc6 != 0 { throw ServerError.badListenAddress(address) }
      }
    }
    let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
    try uvCheck(uv_tcp_init(loop, tcp), "uv_tcp_init")
    listeners.append(UnsafeMutableRawPointer(tcp))
    tcp.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    _ = try withUnsafeBytes(of: &storage) { raw in
      try uvCheck(
        uv_tcp_bind(tcp, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), 0), "bind \(address)")
    }
    try uvCheck(uv_listen(asStream(tcp), configuration.backlog, Self.onConnection), "listen \(address)")
    return try boundPort(tcp)
  }

  /// The port a TCP handle is bound to.
  private func boundPort(_ tcp: UnsafeMutablePointer<uv_tcp_t>) throws -> Int {
    var bound = sockaddr_storage()
    var len = Int32(MemoryLayout<sockaddr_storage>.size)
    _ = try withUnsafeMutableBytes(of: &bound) { raw in
      try uvCheck(
        uv_tcp_getsockname(tcp, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &len), "getsockname")
    }
    let family = Int32(bound.ss_family)
    return withUnsafeBytes(of: &bound) { raw in
      if family == AF_INET6 {
        return Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
      }
      return Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
    }
  }

  /// Serves a listening socket systemd passed (socket activation): libuv adopts the descriptor
  /// (`uv_tcp_open` / `uv_pipe_open`) and listens on it; closing the server closes it. Returns the
  /// port of a TCP one.
  func listenInherited(_ inherited: InheritedListener) throws -> Int? {
    let what = "inherited fd \(inherited.fd) (\(inherited.name), \(inherited.address))"
    let handle: UnsafeMutableRawPointer
    var port: Int?
    switch inherited.kind {
    case .tcp:
      let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
      try uvCheck(uv_tcp_init(loop, tcp), "uv_tcp_init")
      listeners.append(UnsafeMutableRawPointer(tcp))
      try uvCheck(uv_tcp_open(tcp, uv_os_sock_t(inherited.fd)), "uv_tcp_open \(what)")
      port = try boundPort(tcp)
      handle = UnsafeMutableRawPointer(tcp)
    case .unix:
      let pipe = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
      try uvCheck(uv_pipe_init(loop, pipe, 0), "uv_pipe_init")
      listeners.append(UnsafeMutableRawPointer(pipe))
      try uvCheck(uv_pipe_open(pipe, uv_file(inherited.fd)), "uv_pipe_open \(what)")
      handle = UnsafeMutableRawPointer(pipe)
    }
    let stream = handle.assumingMemoryBound(to: uv_stream_t.self)
    stream.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    try uvCheck(uv_listen(stream, configuration.backlog, Self.onConnection), "listen on \(what)")
    return port
  }

  static func splitHostPort(_ address: String) throws -> (String, UInt16) {
    var host: Substring
    var portText: Substring
    if address.hasPrefix("[") {
      guard let close = address.firstIndex(of: "]"), address[close...].hasPrefix("]:") else {
        throw ServerError.badListenAddress(address)
      }
      host = address[address.index(after: address.startIndex)..<close]
      portText = address[address.index(close, offsetBy: 2)...]
    } else {
      guard let colon = address.lastIndex(of: ":") else { throw ServerError.badListenAddress(address) }
      host = address[..<colon]
      portText = address[address.index(after: colon)...]
    }
    guard !host.isEmpty, let port = UInt16(portText) else { throw ServerError.badListenAddress(address) }
    return (String(host), port)
  }

  /// Binds a Unix socket at `path` with `socketMode`, removing a stale socket file first.
  func listenUnix(_ path: String) throws {
    guard path.utf8.count < 108 else { throw ServerError.socketPathTooLong(path) }
    try Self.removeStaleSocket(path)
    let pipe = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
    try uvCheck(uv_pipe_init(loop, pipe, 0), "uv_pipe_init")
    listeners.append(UnsafeMutableRawPointer(pipe))
    pipe.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    try uvCheck(uv_pipe_bind(pipe, path), "bind \(path)")
    // Nobody can connect before listen(), so setting the mode here leaves no window.
    if chmod(path, mode_t(configuration.socketMode)) != 0 {
      throw ServerError.socketSetup(path: path, "chmod: \(String(cString: strerror(errno)))")
    }
    try uvCheck(uv_listen(asStream(pipe), configuration.backlog, Self.onConnection), "listen \(path)")
  }

  /// A socket file nobody accepts on (connect gives ECONNREFUSED) is left over from a server
  /// that died; remove it. A live socket or any other kind of file is refused.
  static func removeStaleSocket(_ path: String) throws {
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    guard st.st_mode & S_IFMT == S_IFSOCK else { throw ServerError.notASocket(path) }
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ServerError.socketSetup(path: path, "socket: \(String(cString: strerror(errno)))") }
    defer { Glibc.close(fd) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      for (k, b) in path.utf8.enumerated() { raw[k] = b }
    }
    var rc: Int32
    repeat {
      rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
      }
    } while rc != 0 && errno == EINTR
    if rc == 0 { throw ServerError.socketInUse(path) }
    guard errno == ECONNREFUSED else {
      throw ServerError.socketSetup(path: path, "checking for a live server: \(String(cString: strerror(errno)))")
    }
    if unlink(path) != 0 && errno != ENOENT {
      throw ServerError.socketSetup(path: path, "removing the stale socket: \(String(cString: strerror(errno)))")
    }
  }
}
