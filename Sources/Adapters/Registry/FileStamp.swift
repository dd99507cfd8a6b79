#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// What `rescan` compares to notice a changed file: inode (an atomic replace makes a new one),
/// size and modification time in nanoseconds.
struct FileStamp: Hashable, Sendable {
  var name: String
  var inode: UInt64
  var size: Int
  var mtime: Int64  // nanoseconds since the epoch

  /// The stamp of a regular file, or nil when there is none at `path`.
  static func of(_ path: String, name: String) -> FileStamp? {
    var st = stat()
    guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
    #if canImport(Glibc)
      let t = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
    #else
      let t = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
    #endif
    return FileStamp(name: name, inode: UInt64(st.st_ino), size: Int(st.st_size), mtime: t)
  }
}

/// The stamps of the files one adapter version loads from; equal fingerprints mean the
/// resident copy is still what is on disk.
struct Fingerprint: Hashable, Sendable {
  var files: [FileStamp]
  var bytes: Int { files.reduce(0) { $0 + $1.size } }

  /// The files a loader reads in a version directory.
  static let adapterFiles = [PEFTAdapter.configFile, PEFTAdapter.weightsFile, GGUFLoRA.fileName]

  /// Stamps of the adapter files in directory `dir`, nil when it holds none.
  static func directory(_ dir: String) -> Fingerprint? {
    let files = adapterFiles.compactMap { FileStamp.of(dir + "/" + $0, name: $0) }
    return files.isEmpty ? nil : Fingerprint(files: files)
  }

  /// A directory's adapter files, or the file itself when `path` is a file.
  static func path(_ path: String) -> Fingerprint? {
    if let f = FileStamp.of(path, name: "") { return Fingerprint(files: [f]) }
    return directory(path)
  }
}
