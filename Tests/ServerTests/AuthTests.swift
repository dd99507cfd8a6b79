import Foundation
import Testing

@testable import Server

@Suite struct SHA256Tests {
  /// Made with Python's hashlib (an independent implementation):
  /// ```
  /// python3 -c 'import hashlib
  /// for n in [0,1,3,55,56,57,63,64,65,119,120,127,128,1000]:
  ///     print(n, hashlib.sha256(bytes((i*7+3)%256 for i in range(n))).hexdigest())'
  /// ```
  /// The lengths straddle the padding's block boundaries (55/56/57, 63/64/65, 119/120).
  static let vectors: [(Int, String)] = [
    (0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (1, "084fed08b978af4d7d196a7446a86b58009e636b611db16211b65a9aadff29c5"),
    (3, "6ab0dba1f4f1dfbb37b4f9eeb092c09fca4900ad32bdcd147d8dde35d6c87c35"),
    (55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"),
    (56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"),
    (57, "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73"),
    (63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"),
    (64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"),
    (65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"),
    (119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"),
    (120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"),
    (127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07"),
    (128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"),
    (1000, "1e9bc38cbf860b9ec31918b065f9b52476c549a782e0e7990bed8ce3868d2371"),
  ]

  @Test func matchesHashlib() {
    for (n, hex) in Self.vectors {
      let message = (0..<n).map { UInt8(($0 * 7 + 3) % 256) }
      #expect(SHA256.hex(message) == hex, "length \(n)")
    }
  }

  /// FIPS 180-4's examples: "abc" and one million 'a'.
  @Test func fipsExamples() {
    #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(
      SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000))
        == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }
}

@Suite struct AdapterPatternTests {
  @Test(arguments: [
    ("support", "support", true), ("support", "support2", false), ("legal*", "legal", true),
    ("legal*", "legal-eu", true), ("legal*", "xlegal", false), ("*", "anything", true), ("*-v?", "tone-v2", true),
    ("*-v?", "tone-v12", false), ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYY", false),
    ("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaa", false),
    ("?", "", false), ("**", "", true),
  ])
  func globs(pattern: String, name: String, expected: Bool) throws {
    let p = try #require(AdapterPattern(pattern))
    #expect(p.matches(name) == expected)
  }

  @Test func refusesWhatNamesCannotHold() {
    for bad in ["", "a/b", "../x", "a b", "[ab]", String(repeating: "a", count: 101)] {
      #expect(AdapterPattern(bad) == nil, "\(bad)")
    }
  }
}

@Suite struct AuthPolicyTests {
  static let opsKey = "correct horse battery staple"
  static let file = """
    {"keys": [
      {"name": "team-a", "key": "team-a-secret-0123456789", "adapters": ["support", "legal*"]},
      {"name": "ops", "sha256": "C4BBCB1FBEC99D65BF59D85C8CB62EE2DB963F0FE106F483D9AFA73BD4E39A8A", "adapters": ["*"], "admin": true},
      {"name": "base-only", "key": "base-only-secret-abcdef"}
    ]}
    """

  func policy() throws -> AuthPolicy { try AuthPolicy(json: Array(Self.file.utf8), source: "keys.json") }

  @Test func authenticatesClearAndDigestKeys() throws {
    let p = try policy()
    #expect(p.identities.map(\.name) == ["team-a", "ops", "base-only"])
    let a = try #require(p.authenticate(key: "team-a-secret-0123456789"))
    #expect(a.name == "team-a" && !a.admin)
    let ops = try #require(p.authenticate(key: Self.opsKey))  // given as its uppercase digest
    #expect(ops.name == "ops" && ops.admin)
    #expect(p.authenticate(key: "team-a-secret-012345678") == nil)
    #expect(p.authenticate(key: "") == nil)
    #expect(p.authenticate(key: SHA256.hex(Array(Self.opsKey.utf8))) == nil)  // the digest is not the key
  }

  @Test func adaptersAndAdmin() throws {
    let p = try policy()
    let a = p.authenticate(key: "team-a-secret-0123456789")!
    let ops = p.authenticate(key: Self.opsKey)!
    let base = p.authenticate(key: "base-only-secret-abcdef")!
    #expect(a.mayUse(adapter: "support") && a.mayUse(adapter: "legal-eu") && !a.mayUse(adapter: "sales"))
    #expect(ops.mayUse(adapter: "sales") && !base.mayUse(adapter: "support"))

    func gen(_ names: [String]) -> Request {
      .generate(GenerateRequest(id: "q", input: .prompt("hi"), adapters: names.map { AdapterSelection(name: $0) }))
    }
    #expect(p.authorize(gen([]), as: base) == nil)
    #expect(p.authorize(gen(["support", "legal"]), as: a) == nil)
    let refused = try #require(p.authorize(gen(["support", "sales"]), as: a))
    #expect(refused.code == .unauthorized && refused.id == "q" && refused.message.contains("\"sales\""))
    for admin: Request in [
      .load(id: "l", name: "x", path: "/tmp/x"), .unload(id: "u", name: "x"), .rollback(id: "r", adapter: "x", to: 1),
      .history(id: "h", adapter: "x"), .learn(id: "k", adapter: "x", wait: true),
    ] {
      #expect(p.authorize(admin, as: a)?.code == .unauthorized)
      #expect(p.authorize(admin, as: ops) == nil)
    }
    let fb = Request.feedback(FeedbackRequest(id: "f", request: "r-1", rating: .up))
    for open: Request in [fb, .adapters(id: "a"), .stats(id: "s"), .cancel(id: "c", target: "q")] {
      #expect(p.authorize(open, as: base) == nil)
    }
  }

  @Test(arguments: [
    ("[]", "keys.json: expected an object {\"keys\": [...]}, got an array"),
    ("{\"keys\":[]}", "keys.json: \"keys\" is empty: nobody could connect; add an entry"),
    ("{\"keys\":[],\"x\":1}", "keys.json: unknown field \"x\" (only \"keys\")"),
    (
      "{\"keys\":[{\"name\":\"a\",\"key\":\"short\"}]}",
      "keys.json: keys[0] (\"a\"): \"key\" is shorter than 16 characters"
    ),
    (
      "{\"keys\":[{\"name\":\"a\",\"sha256\":\"abc\"}]}",
      "keys.json: keys[0] (\"a\"): \"sha256\" must be 64 hex digits"
    ),
    (
      "{\"keys\":[{\"name\":\"a\",\"key\":\"0123456789abcdef\",\"sha256\":\"00\"}]}",
      "keys.json: keys[0] (\"a\"): give \"key\" or \"sha256\", not both"
    ),
    ("{\"keys\":[{\"name\":\"a\"}]}", "keys.json: keys[0] (\"a\"): missing \"key\""),
    ("{\"keys\":[{\"key\":\"0123456789abcdef\"}]}", "keys.json: keys[0]: missing field \"name\""),
    ("{\"keys\":[{\"name\":\"a b\",\"key\":\"0123456789abcdef\"}]}", "keys.json: keys[0] (\"a b\"): \"name\" must be"),
    (
      "{\"keys\":[{\"name\":\"a\",\"key\":\"0123456789abcdef\",\"adapter\":[\"x\"]}]}",
      "keys.json: keys[0] (\"a\"): unknown field \"adapter\""
    ),
    (
      "{\"keys\":[{\"name\":\"a\",\"key\":\"0123456789abcdef\",\"adapters\":[\"../x\"]}]}",
      "keys.json: keys[0] (\"a\"): adapters[0] must be an adapter name or glob"
    ),
    (
      "{\"keys\":[{\"name\":\"a\",\"key\":\"0123456789abcdef\",\"adapters\":\"x\"}]}",
      "keys.json: keys[0] (\"a\"): \"adapters\" must be a list"
    ),
    (
      "{\"keys\":[{\"name\":\"a\",\"key\":\"0123456789abcdef\",\"admin\":\"yes\"}]}",
      "keys.json: keys[0] (\"a\"): \"admin\" must be true or false, got a string"
    ),
    (
      "{\"keys\":[{\"name\":\"a\",\"key\":\"0123456789abcdef\"},{\"name\":\"a\",\"key\":\"0123456789abcdeg\"}]}",
      "keys.json: keys[1] (\"a\"): the name is already used by keys[0]"
    ),
    (
      "{\"keys\":[{\"name\":\"a\",\"key\":\"0123456789abcdef\"},{\"name\":\"b\",\"sha256\":\"9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f\"}]}",
      "keys.json: keys[1] (\"b\"): the same key as keys[0]"
    ),
    ("{\"keys\":[{\"name\":\"a\",\"name\":\"b\"}]}", "keys.json: not valid JSON"),
  ])
  func malformedFilesSayWhereAndWhy(text: String, expected: String) {
    #expect(throws: KeysFileError.self) { try AuthPolicy(json: Array(text.utf8), source: "keys.json") }
    do {
      _ = try AuthPolicy(json: Array(text.utf8), source: "keys.json")
    } catch {
      #expect(error.description.hasPrefix(expected), "\(error.description)")
    }
  }

  @Test func readsTheFile() throws {
    let path = NSTemporaryDirectory() + "lorad-keys-\(UUID().uuidString.prefix(8)).json"
    try Self.file.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(try AuthPolicy(contentsOf: path).identities.count == 3)
    #expect(throws: KeysFileError(source: path + ".missing", reason: "no such file")) {
      try AuthPolicy(contentsOf: path + ".missing")
    }
  }
}
