import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A whole file mapped read-only. Immutable after `init`; the mapping lives as long as the object.
final class MappedFile: @unchecked Sendable {  // read-only mapping, never written after init
  let path: String
  let size: Int
  private let base: UnsafeMutableRawPointer?

  init(path: String) throws {
    self.path = path
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
      let e = errno
      if e == ENOENT { throw AdapterError.missingFile(path: path) }
      throw AdapterError.cannotRead(path: path, reason: String(cString: strerror(e)))
    }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw AdapterError.cannotRead(path: path, reason: String(cString: strerror(errno))) }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw AdapterError.cannotRead(path: path, reason: "it is a directory") }
    size = Int(st.st_size)
    if size == 0 {
      base = nil
      return
    }
    // MAP_POPULATE: the pages are mapped (read ahead) in one go, not one fault per 4 KB page as
    // the conversions touch them; every byte is read right after anyway.
    guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0), m != MAP_FAILED else {
      throw AdapterError.cannotRead(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
    }
    base = m
  }

  deinit { if let base { munmap(base, size) } }

  /// The file's bytes (valid while `self` lives).
  var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }
}

/// Crash-safe file replacement: write a temporary sibling, fsync it, rename it over the target,
/// fsync the directory. A reader sees the old file or the new one, never a torn one.
enum AtomicFile {
  static func write(_ bytes: [UInt8], to path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let tmp =
      (dir.isEmpty ? "." : dir)
      + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    if fd < 0 { throw AdapterError.writeFailed(path: path, reason: String(cString: strerror(errno))) }
    var ok = false
    defer {
      if !ok { unlink(tmp) }
    }
    do {
      defer { close(fd) }
      var done = 0
      try bytes.withUnsafeBytes { buf in
        while done < buf.count {
          let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
          if n < 0 {
            if errno == EINTR { continue }
            throw AdapterError.writeFailed(path: path, reason: String(cString: strerror(errno)))
          }
          done += n
        }
      }
      if fsync(fd) != 0 {
        throw AdapterError.writeFailed(path: path, reason: "fsync: \(String(cString: strerror(errno)))")
      }
    }
    if rename(tmp, path) != 0 {
      throw AdapterError.writeFailed(path: path, reason: "rename: \(String(cString: strerror(errno)))")
    }
    ok = true
    try syncDirectory(dir.isEmpty ? "." : dir)
  }

  /// fsync a directory so a rename or create inside it is durable.
  static func syncDirectory(_ dir: String) throws {
    let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd < 0 { throw AdapterError.writeFailed(path: dir, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    if fsync(fd) != 0 && errno != EINVAL {
      throw AdapterError.writeFailed(path: dir, reason: "fsync: \(String(cString: strerror(errno)))")
    }
  }
}

/// `body(i)` for every i in 0..<count on all cores (Dispatch), results in order; the first error
/// thrown (by index) is rethrown. For the conversions of a cold adapter load.
func parallelMap<T: Sendable>(_ count: Int, _ body: @Sendable (Int) throws -> T) throws -> [T] {
  var items = [Result<T, any Error>?](repeating: nil, count: count)
  items.withUnsafeMutableBufferPointer { buf in
    let base = Int(bitPattern: buf.baseAddress)  // each index written by exactly one iteration
    DispatchQueue.concurrentPerform(iterations: count) { i in
      UnsafeMutablePointer<Result<T, any Error>?>(bitPattern: base)![i] = Result { try body(i) }
    }
  }
  return try items.map { try $0!.get() }
}
