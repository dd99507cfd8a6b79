import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A listening socket lorad did not open itself: systemd passed it (socket activation). Hand
/// it to `LineServer` through `ServerConfiguration.inheritedListeners`; the server then owns it.
public struct InheritedListener: Sendable, Equatable {
  public enum Kind: Sendable, Equatable {
    /// AF_INET or AF_INET6.
    case tcp
    /// AF_UNIX.
    case unix
  }
  public let fd: Int32
  /// Its name from `$LISTEN_FDNAMES` (`FileDescriptorName=` in the socket unit), or "unknown".
  public let name: String
  public let kind: Kind
  /// Its own address: `HOST:PORT`, `[v6]:PORT`, a path or `@name`, for logs.
  public let address: String

  public init(fd: Int32, name: String, kind: Kind, address: String) {
    self.fd = fd
    self.name = name
    self.kind = kind
    self.address = address
  }
}

/// Why the sockets systemd passed cannot be used.
public enum ListenFDsError: Error, Equatable, CustomStringConvertible {
  case badCount(String)
  case notAListeningStream(fd: Int32, name: String, String)
  case unsupportedFamily(fd: Int32, name: String, Int32)

  public var description: String {
    switch self {
    case .badCount(let v):
      return "LISTEN_FDS=\(v) is not a count of descriptors; check the socket unit (lorad.socket)"
    case .notAListeningStream(let fd, let name, let why):
      return "inherited fd \(fd) (\(name)): \(why); lorad.socket must use ListenStream= only"
    case .unsupportedFamily(let fd, let name, let family):
      return "inherited fd \(fd) (\(name)) is of address family \(family); lorad serves TCP and Unix sockets only"
    }
  }
}

/// Socket activation (sd_listen_fds(3), by hand): systemd passes listening sockets as
/// descriptors 3, 4, … and says so in `$LISTEN_FDS` (how many), `$LISTEN_PID` (for which
/// process: a child that inherited the environment must not take them) and `$LISTEN_FDNAMES`
/// (colon-separated names).
public enum ListenFDs {
  /// The first passed descriptor (`SD_LISTEN_FDS_START`).
  public static let firstFD: Int32 = 3

  /// The listening sockets passed to this process, each checked to be a listening TCP or Unix
  /// stream socket and made close-on-exec; empty when none were passed (no `$LISTEN_FDS`, or
  /// `$LISTEN_PID` names another process). With `unsetEnvironment` the three variables are
  /// removed from the process environment, so children never see them; call this once.
  public static func take(
    environment: [String: String] = ProcessInfo.processInfo.environment, pid: Int32 = getpid(),
    firstFD: Int32 = ListenFDs.firstFD, unsetEnvironment: Bool = true
  ) throws -> [InheritedListener] {
    defer {
      if unsetEnvironment {
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
      }
    }
    guard let pidText = environment["LISTEN_PID"], Int32(pidText) == pid else { return [] }
    guard let countText = environment["LISTEN_FDS"] else { return [] }
    guard let count = Int32(countText), count >= 0, count <= 4096 else { throw ListenFDsError.badCount(countText) }
    // Names count only when there is one per descriptor (as sd_listen_fds_with_names).
    var names = (environment["LISTEN_FDNAMES"] ?? "").split(separator: ":", omittingEmptySubsequences: false)
      .map { $0.isEmpty ? "unknown" : String($0) }
    if names.count != Int(count) { names = Array(repeating: "unknown", count: Int(count)) }
    var out: [InheritedListener] = []
    for k in 0..<count {
      let fd = firstFD + k
      let name = names[Int(k)]
      try Socket.setCloseOnExec(fd)
      let info: (family: Int32, listeningStream: Bool, address: String)
      do { info = try Socket.inspect(fd) } catch let e as SocketError {
        throw ListenFDsError.notAListeningStream(fd: fd, name: name, e.message)
      }
      guard info.listeningStream else {
        throw ListenFDsError.notAListeningStream(fd: fd, name: name, "not a listening stream socket")
      }
      let kind: InheritedListener.Kind
      switch info.family {
      case AF_INET, AF_INET6: kind = .tcp
      case AF_UNIX: kind = .unix
      default: throw ListenFDsError.unsupportedFamily(fd: fd, name: name, info.family)
      }
      out.append(InheritedListener(fd: fd, name: name, kind: kind, address: info.address))
    }
    return out
  }
}
