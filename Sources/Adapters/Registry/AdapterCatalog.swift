import Foundation

/// What the adapters directory holds for one name, as last scanned: its versions with the
/// stamps of their files, the `current` pointer and the `lorad.json` marker. A value; the
/// registry keeps one per name under its lock.
struct CatalogEntry: Equatable, Sendable {
  enum Pointer: Equatable, Sendable {
    /// No `current` file: version 0 when there is one, else the newest.
    case absent
    case version(Int)
    case invalid(String)
  }
  var versions: [Int: Fingerprint]
  var pointer: Pointer
  var pointerStamp: FileStamp?
  var metadata: AdapterMetadata?
  var metadataStamp: FileStamp?

  var versionNumbers: [Int] { versions.keys.sorted() }

  /// The current version, or why there is none.
  func current(name: String, directory: String) throws -> Int {
    switch pointer {
    case .absent:
      if versions[0] != nil { return 0 }
      return versionNumbers.last!
    case .version(let v):
      guard versions[v] != nil else {
        throw RegistryError.badCurrent(
          name: name, path: AdapterCatalog.currentPath(directory, name),
          reason:
            "names version \(v), which is not there (versions: \(versionNumbers.map(String.init).joined(separator: ", ")))"
        )
      }
      return v
    case .invalid(let why):
      throw RegistryError.badCurrent(name: name, path: AdapterCatalog.currentPath(directory, name), reason: why)
    }
  }
}

/// The layout of the adapters directory, and reading it:
/// ```
/// DIR/<name>/                      version 0: adapter_config.json + adapter_model.safetensors, or adapter.gguf
/// DIR/<name>/lorad.json            {"learnable": true, "created": …} for adapters lorad created
/// DIR/<name>/versions/<N>/         learned versions (PEFT), N = 1, 2, …
/// DIR/<name>/current               the current version number, replaced atomically
/// ```
/// Names starting with '.' (staging directories, temporary files) are never adapters.
enum AdapterCatalog {
  static let versionsDir = "versions"
  static let currentFile = "current"

  static func adapterPath(_ dir: String, _ name: String) -> String { dir + "/" + name }
  static func versionPath(_ dir: String, _ name: String, _ v: Int) -> String {
    v == 0 ? adapterPath(dir, name) : adapterPath(dir, name) + "/\(versionsDir)/\(v)"
  }
  static func currentPath(_ dir: String, _ name: String) -> String { adapterPath(dir, name) + "/" + currentFile }
  static func metadataPath(_ dir: String, _ name: String) -> String {
    adapterPath(dir, name) + "/" + AdapterMetadata.fileName
  }

  /// Every adapter in `dir` (an absent directory holds none).
  static func scan(_ dir: String) -> [String: CatalogEntry] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    var out: [String: CatalogEntry] = [:]
    for n in names where (try? AdapterSpec.validate(name: n)) != nil {
      if let e = scan(dir, n) { out[n] = e }
    }
    return out
  }

  /// One adapter, or nil when `DIR/<name>` holds neither version 0 nor any learned version.
  static func scan(_ dir: String, _ name: String) -> CatalogEntry? {
    let root = adapterPath(dir, name)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else { return nil }
    var versions: [Int: Fingerprint] = [:]
    if let f = Fingerprint.directory(root) { versions[0] = f }
    let vdir = root + "/" + versionsDir
    for s in (try? FileManager.default.contentsOfDirectory(atPath: vdir)) ?? [] {
      guard let v = versionNumber(s), v > 0, let f = Fingerprint.directory(vdir + "/" + s) else { continue }
      versions[v] = f
    }
    guard !versions.isEmpty else { return nil }
    let cur = currentPath(dir, name)
    let pointerStamp = FileStamp.of(cur, name: currentFile)
    var pointer = CatalogEntry.Pointer.absent
    if pointerStamp != nil {
      if let d = FileManager.default.contents(atPath: cur), let s = String(data: d, encoding: .utf8) {
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        pointer = versionNumber(t).map { .version($0) } ?? .invalid("holds '\(t.prefix(40))', not a version number")
      } else {
        pointer = .invalid("cannot be read")
      }
    }
    let metaPath = metadataPath(dir, name)
    let metadataStamp = FileStamp.of(metaPath, name: AdapterMetadata.fileName)
    let metadata = metadataStamp == nil ? nil : AdapterMetadata.read(metaPath)
    return CatalogEntry(
      versions: versions, pointer: pointer, pointerStamp: pointerStamp, metadata: metadata,
      metadataStamp: metadataStamp)
  }

  /// A version directory's name as a number: decimal digits only, no sign.
  static func versionNumber(_ s: String) -> Int? {
    guard !s.isEmpty, s.count <= 9, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
    return Int(s)
  }
}
