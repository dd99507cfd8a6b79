import Foundation

/// One loadable adapter: a version of a named adapter in the adapters directory, or a PEFT
/// directory / GGUF LoRA given by path. Its `path` (absolute, standardized) is what identifies
/// a resident copy, so `legal@0` and `adapters/legal` share one.
public struct AdapterRef: Hashable, Sendable, CustomStringConvertible {
  public enum Kind: Hashable, Sendable {
    /// `DIR/<name>/` (version 0) or `DIR/<name>/versions/<N>/`.
    case registered
    /// A directory or `.gguf` file named by path; always version 0.
    case path
  }
  public let kind: Kind
  public let name: String
  public let version: Int
  /// The directory or file the weights load from.
  public let path: String

  public init(kind: Kind, name: String, version: Int, path: String) {
    self.kind = kind
    self.name = name
    self.version = version
    self.path = path
  }

  /// `name@N` for a registered adapter, the path otherwise.
  public var description: String { kind == .registered ? "\(name)@\(version)" : path }
}

/// What a request names: `name`, `name@N`, or a path. Names use only [A-Za-z0-9_.-], do not
/// start with '.' or '-', and do not end in `.gguf`; anything with a '/' (or ending in `.gguf`)
/// is a path, so a directory in the working directory is written `./dir`.
public enum AdapterSpec: Equatable, Sendable {
  case name(String, version: Int?)
  case path(String)

  public static let maxNameLength = 100

  public static func parse(_ spec: String) throws -> AdapterSpec {
    if spec.contains("/") || spec.hasSuffix(".gguf") { return .path(spec) }
    guard let at = spec.lastIndex(of: "@") else {
      try validate(name: spec)
      return .name(spec, version: nil)
    }
    let name = String(spec[..<at])
    let v = spec[spec.index(after: at)...]
    try validate(name: name)
    guard !v.isEmpty, v.count <= 9, v.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(v) else {
      throw RegistryError.badName(spec, reason: "the version after '@' must be a number, as in \(name)@3")
    }
    return .name(name, version: n)
  }

  /// Throws `RegistryError.badName` unless `name` is safe as one directory name.
  public static func validate(name: String) throws {
    func bad(_ r: String) -> RegistryError { .badName(name, reason: r) }
    if name.isEmpty { throw bad("it is empty") }
    if name.utf8.count > maxNameLength { throw bad("it is longer than \(maxNameLength) characters") }
    if let c = name.unicodeScalars.first(where: { !isNameCharacter($0) }) {
      throw bad("'\(c.escaped(asASCII: true))' is not allowed")
    }
    if name.hasPrefix(".") { throw bad("it starts with '.' (hidden files and '..' are not adapters)") }
    if name.hasPrefix("-") { throw bad("it starts with '-', which reads as an option") }
    if name.hasSuffix(".gguf") { throw bad("it ends in .gguf, which reads as a file path") }
  }

  static func isNameCharacter(_ c: Unicode.Scalar) -> Bool {
    switch c {
    case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "-": return true
    default: return false
    }
  }
}
