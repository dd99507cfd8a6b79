/// Who a connection is, once its `auth` line carried a valid key: a name, the adapters it may
/// use, and whether it may administer.
public struct AuthIdentity: Sendable, Equatable {
  /// The entry's `name`. Feedback is accepted only on requests made under the same name.
  public let name: String
  public let adapters: [AdapterPattern]
  /// May load, unload, roll back, read history and run the learner.
  public let admin: Bool

  public init(name: String, adapters: [AdapterPattern], admin: Bool) {
    self.name = name
    self.adapters = adapters
    self.admin = admin
  }

  /// Whether this key may generate with adapter `name` (any version of it). The base model
  /// (no adapter) is open to every key.
  public func mayUse(adapter name: String) -> Bool {
    adapters.contains { $0.matches(name) }
  }
}

/// The access rules of `--keys FILE` (format: `KeysFile`). Immutable once loaded; share it.
/// Keys are held only as SHA-256 digests, and a presented key is compared with every digest in
/// constant time, so neither the file nor the timing of a refusal tells an attacker anything
/// about the keys.
public struct AuthPolicy: Sendable {
  private let entries: [(digest: [UInt8], identity: AuthIdentity)]

  /// Reads and checks the keys file; every problem names the file, the entry and the fix.
  public init(contentsOf path: String) throws(KeysFileError) {
    self.init(try KeysFile.read(path: path))
  }

  /// Checks keys-file text; `source` names it in errors.
  public init(json: [UInt8], source: String) throws(KeysFileError) {
    self.init(try KeysFile.parse(json, source: source))
  }

  private init(_ parsed: [KeysFile.Entry]) {
    entries = parsed.map { ($0.digest, AuthIdentity(name: $0.name, adapters: $0.adapters, admin: $0.admin)) }
  }

  /// The identities, in file order.
  public var identities: [AuthIdentity] { entries.map(\.identity) }

  /// The identity whose key is `key`, or nil. Hashes the key once and compares the digest with
  /// every entry's, all 32 bytes each, with no early exit.
  public func authenticate(key: String) -> AuthIdentity? {
    let digest = SHA256.hash(Array(key.utf8))
    var found = -1
    for (k, e) in entries.enumerated() {
      var diff: UInt8 = 0
      for j in 0..<32 { diff |= e.digest[j] ^ digest[j] }
      if diff == 0 { found = k }
    }
    return found >= 0 ? entries[found].identity : nil
  }

  /// The `unauthorized` error `request` gets from `identity`, or nil when it may go ahead.
  /// Generation needs every named adapter to be allowed; load, unload, rollback, history and
  /// learn need admin. Feedback is allowed here: whose request it rates is the daemon's check
  /// (it compares `identity.name` with the name the request was made under).
  public func authorize(_ request: Request, as identity: AuthIdentity) -> ProtocolError? {
    func refuse(_ why: String) -> ProtocolError {
      ProtocolError(id: request.id, code: .unauthorized, message: "key \"\(identity.name)\" \(why)")
    }
    switch request {
    case .generate(let g):
      for a in g.adapters where !identity.mayUse(adapter: a.name) {
        return refuse("may not use adapter \"\(a.name)\"; ask for it to be added to this key's adapters")
      }
      return nil
    case .load, .unload, .rollback, .history, .learn:
      return identity.admin ? nil : refuse("may not \(request.op): that needs an admin key")
    case .feedback, .cancel, .adapters, .stats, .auth:
      return nil
    }
  }
}
