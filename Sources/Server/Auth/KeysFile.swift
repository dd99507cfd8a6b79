import Foundation

/// A keys file lorad refuses, with where and why: `keys.json: keys[2] ("team-b"): field
/// "sha256" must be 64 hex digits (the output of sha256sum)`.
public struct KeysFileError: Error, Equatable, CustomStringConvertible {
  /// The file's path (or what the text came from).
  public let source: String
  /// Index of the entry in `keys`, when the problem is in one.
  public let entry: Int?
  /// That entry's name, when it has a readable one.
  public let name: String?
  public let reason: String

  public init(source: String, entry: Int? = nil, name: String? = nil, reason: String) {
    self.source = source
    self.entry = entry
    self.name = name
    self.reason = reason
  }

  public var description: String {
    var at = source
    if let entry { at += ": keys[\(entry)]" + (name.map { " (\"\($0)\")" } ?? "") }
    return "\(at): \(reason)"
  }
}

/// The `--keys FILE` format, one JSON object:
/// ```
/// {"keys": [
///   {"name": "team-a", "key": "clear text, 16+ characters", "adapters": ["support", "legal*"]},
///   {"name": "ops", "sha256": "<64 hex digits: printf %s KEY | sha256sum>", "adapters": ["*"], "admin": true}
/// ]}
/// ```
/// Each entry: `name` (unique; [A-Za-z0-9_.-], what feedback ownership compares), exactly one of
/// `key` (the key itself, at least 16 characters) or `sha256` (its digest, so the file need not
/// hold the key), `adapters` (names or globs the key may use; default none: the base model
/// only), `admin` (may load, unload, roll back, see history and run the learner; default
/// false). Unknown fields are refused, so a typo cannot silently widen or narrow access.
enum KeysFile {
  static let maxBytes = 1 << 20
  static let minKeyLength = 16

  struct Entry {
    var name: String
    var digest: [UInt8]
    var adapters: [AdapterPattern]
    var admin: Bool
  }

  static func read(path: String) throws(KeysFileError) -> [Entry] {
    guard let data = FileManager.default.contents(atPath: path) else {
      let why =
        FileManager.default.fileExists(atPath: path)
        ? "cannot be read by this user (uid \(getuid())); check its permissions" : "no such file"
      throw KeysFileError(source: path, reason: why)
    }
    return try parse(Array(data), source: path)
  }

  static func parse(_ bytes: [UInt8], source: String) throws(KeysFileError) -> [Entry] {
    func fail(_ reason: String, _ k: Int? = nil, _ name: String? = nil) -> KeysFileError {
      KeysFileError(source: source, entry: k, name: name, reason: reason)
    }
    guard bytes.count <= maxBytes else { throw fail("larger than \(maxBytes) bytes; is this the keys file?") }
    let root: JSONValue
    do { root = try JSONParser.parse(bytes) } catch { throw fail("not valid JSON: \(error.message)") }
    guard case .object(let top) = root else { throw fail("expected an object {\"keys\": [...]}, got \(root.typeName)") }
    if let extra = top.keys.first(where: { $0 != "keys" }) { throw fail("unknown field \"\(extra)\" (only \"keys\")") }
    guard case .array(let items)? = top["keys"] else { throw fail("missing \"keys\": a list of key entries") }
    guard !items.isEmpty else { throw fail("\"keys\" is empty: nobody could connect; add an entry") }

    var entries: [Entry] = []
    var seenNames: [String: Int] = [:]
    var seenDigests: [[UInt8]: Int] = [:]
    for (k, item) in items.enumerated() {
      guard case .object(let o) = item else { throw fail("expected an object, got \(item.typeName)", k) }
      guard case .string(let name)? = o["name"] else { throw fail("missing field \"name\" (a string)", k) }
      let allowed: Set<String> = ["name", "key", "sha256", "adapters", "admin"]
      if let extra = o.keys.first(where: { !allowed.contains($0) }) {
        throw fail("unknown field \"\(extra)\" (allowed: name, key, sha256, adapters, admin)", k, name)
      }
      guard isValidName(name) else {
        throw fail("\"name\" must be 1 to 64 letters, digits, '_', '.' or '-'", k, name)
      }
      if let other = seenNames[name] { throw fail("the name is already used by keys[\(other)]", k, name) }
      seenNames[name] = k

      let digest: [UInt8]
      switch (o["key"], o["sha256"]) {
      case (.some, .some): throw fail("give \"key\" or \"sha256\", not both", k, name)
      case (nil, nil): throw fail("missing \"key\" (the key) or \"sha256\" (its digest)", k, name)
      case (.string(let key)?, nil):
        guard key.count >= minKeyLength else {
          throw fail(
            "\"key\" is shorter than \(minKeyLength) characters; use a random one, e.g. from "
              + "`head -c 24 /dev/urandom | base64`", k, name)
        }
        digest = SHA256.hash(Array(key.utf8))
      case (nil, .string(let hex)?):
        guard let d = parseHex(hex) else {
          throw fail("\"sha256\" must be 64 hex digits (the output of `printf %s KEY | sha256sum`)", k, name)
        }
        digest = d
      default: throw fail("\"key\" and \"sha256\" must be strings", k, name)
      }
      if let other = seenDigests[digest] { throw fail("the same key as keys[\(other)]", k, name) }
      seenDigests[digest] = k

      var adapters: [AdapterPattern] = []
      switch o["adapters"] {
      case nil, .null?: break
      case .array(let list)?:
        for (j, p) in list.enumerated() {
          guard case .string(let text) = p, let pattern = AdapterPattern(text) else {
            throw fail(
              "adapters[\(j)] must be an adapter name or glob: letters, digits, '_', '.', '-', '*', '?'", k, name)
          }
          adapters.append(pattern)
        }
      case .some(let v): throw fail("\"adapters\" must be a list of names or globs, got \(v.typeName)", k, name)
      }

      var admin = false
      switch o["admin"] {
      case nil, .null?: break
      case .bool(let b)?: admin = b
      case .some(let v): throw fail("\"admin\" must be true or false, got \(v.typeName)", k, name)
      }
      entries.append(Entry(name: name, digest: digest, adapters: adapters, admin: admin))
    }
    return entries
  }

  static func isValidName(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.count <= 64
      && s.unicodeScalars.allSatisfy {
        switch $0 {
        case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "-": return true
        default: return false
        }
      }
  }

  /// 64 hex digits (either case) → 32 bytes.
  static func parseHex(_ s: String) -> [UInt8]? {
    let u = Array(s.utf8)
    guard u.count == 64 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
      default: return nil
      }
    }
    var out: [UInt8] = []
    for i in stride(from: 0, to: 64, by: 2) {
      guard let hi = nibble(u[i]), let lo = nibble(u[i + 1]) else { return nil }
      out.append(hi << 4 | lo)
    }
    return out
  }
}
