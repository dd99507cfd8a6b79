import Foundation
import Tensor

#if canImport(Glibc)
  import Glibc
#endif

/// One tensor of a GGUF file: a view into the mapped file, never copied.
/// `shape[0]` is the fastest-varying dimension (ggml's ne[0]): a weight matrix of
/// `rows × cols` has shape `[cols, rows]`.
public struct GGUFTensor: @unchecked Sendable {  // points into the file's read-only mapping, which outlives it
  public let name: String
  public let type: GGMLType
  public let shape: [Int]
  /// Offset of the data from the start of the file.
  public let offset: Int
  public let byteCount: Int
  public let data: UnsafeRawPointer

  public var elementCount: Int { shape.reduce(1, *) }
  /// ne[0]: elements per row.
  public var columns: Int { shape[0] }
  /// Product of the other dimensions.
  public var rows: Int { shape.dropFirst().reduce(1, *) }
  public var rowBytes: Int { type.rowBytes(columns)! }
}

/// A GGUF (v2/v3) file mapped read-only into memory. Metadata is parsed eagerly with every
/// length and count checked against the bytes left in the file, so a corrupt file gives a
/// `GGUFError` naming the field, never a crash or an absurd allocation. Tensor data stays in the
/// mapping. Immutable after `init`, so it may be shared between threads.
public final class GGUFFile: @unchecked Sendable {
  public let path: String
  public let version: UInt32
  public let metadata: [String: GGUFValue]
  /// Metadata keys in file order.
  public let keys: [String]
  public let tensors: [GGUFTensor]
  public let alignment: Int
  private let tensorIndex: [String: Int]
  private let base: UnsafeMutableRawPointer?
  public let fileSize: Int

  public init(path: String) throws {
    self.path = path
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw GGUFError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw GGUFError.cannotOpen(path: path, reason: "it is a directory") }
    let size = Int(st.st_size)
    fileSize = size
    if size < 24 { throw GGUFError.truncated(path: path, field: "header", offset: 0) }
    guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
      throw GGUFError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
    }
    base = m
    var parsed: Parsed
    do {
      var parser = GGUFParser(path: path, base: UnsafeRawPointer(m), size: size)
      parsed = try parser.parse()
    } catch {
      munmap(m, size)
      throw error
    }
    version = parsed.version
    metadata = parsed.metadata
    keys = parsed.keys
    tensors = parsed.tensors
    alignment = parsed.alignment
    var idx: [String: Int] = [:]
    for (i, t) in tensors.enumerated() { idx[t.name] = i }
    tensorIndex = idx
  }

  deinit { if let base { munmap(base, fileSize) } }

  /// Drops the whole pages of [p, p + count) that lie in this file's mapping from the process:
  /// they stay in the page cache (reclaimable) and come back on the next read, with the same
  /// bytes (the mapping is read-only). For tensors whose data is read from a copy instead.
  public func releasePages(_ p: UnsafeRawPointer, count: Int) {
    guard let base, count > 0 else { return }
    let page = sysconf(Int32(_SC_PAGESIZE)), lo = UnsafeRawPointer(base), hi = lo + fileSize
    guard p >= lo, p + count <= hi else { return }
    let start = (Int(bitPattern: p) + page - 1) & ~(page - 1), end = Int(bitPattern: p + count) & ~(page - 1)
    if end > start { madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
  }

  public func tensor(_ name: String) -> GGUFTensor? { tensorIndex[name].map { tensors[$0] } }

  /// The tensor `name`, or an error naming it.
  public func require(_ name: String) throws -> GGUFTensor {
    guard let t = tensor(name) else { throw GGUFError.missingTensor(path: path, tensor: name) }
    return t
  }

  public subscript(key: String) -> GGUFValue? { metadata[key] }

  public func int(_ key: String) throws -> Int {
    guard let v = metadata[key] else { throw GGUFError.missingKey(path: path, key: key) }
    guard let i = v.int else { throw GGUFError.wrongKeyType(path: path, key: key, expected: "an integer") }
    return i
  }
  public func string(_ key: String) throws -> String {
    guard let v = metadata[key] else { throw GGUFError.missingKey(path: path, key: key) }
    guard let s = v.string else { throw GGUFError.wrongKeyType(path: path, key: key, expected: "a string") }
    return s
  }
  public func double(_ key: String) throws -> Double {
    guard let v = metadata[key] else { throw GGUFError.missingKey(path: path, key: key) }
    guard let d = v.double else { throw GGUFError.wrongKeyType(path: path, key: key, expected: "a number") }
    return d
  }
  public func strings(_ key: String) throws -> [String] {
    guard let v = metadata[key] else { throw GGUFError.missingKey(path: path, key: key) }
    guard let a = v.array else { throw GGUFError.wrongKeyType(path: path, key: key, expected: "an array of strings") }
    return try a.map {
      guard let s = $0.string else {
        throw GGUFError.wrongKeyType(path: path, key: key, expected: "an array of strings")
      }
      return s
    }
  }
  public func ints(_ key: String) throws -> [Int] {
    guard let v = metadata[key] else { throw GGUFError.missingKey(path: path, key: key) }
    guard let a = v.array else { throw GGUFError.wrongKeyType(path: path, key: key, expected: "an array of integers") }
    return try a.map {
      guard let i = $0.int else { throw GGUFError.wrongKeyType(path: path, key: key, expected: "an array of integers") }
      return i
    }
  }
}

struct Parsed {
  var version: UInt32
  var metadata: [String: GGUFValue]
  var keys: [String]
  var tensors: [GGUFTensor]
  var alignment: Int
}
