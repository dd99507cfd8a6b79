import Testing

@testable import Adapters

@Suite struct JSONValueTests {
  func parse(_ s: String) throws -> JSONValue { try JSONParser.parse(Array(s.utf8)) }

  @Test func keepsKeyOrderAndExactNumbers() throws {
    let v = try parse(#" {"z": 1, "a": [true, false, null], "m": {"y": 18446744073709551615, "x": -2.5e-3}} "#)
    let o = try #require(v.object)
    #expect(o.keys == ["z", "a", "m"])
    #expect(o["m"]?.object?.keys == ["y", "x"])
    #expect(o["m"]?.object?["y"] == .number("18446744073709551615"))
    #expect(o["m"]?.object?["y"]?.int == nil)  // does not fit an Int, and is not rounded into one
    #expect(o["m"]?.object?["x"]?.double == -0.0025)
    #expect(o["z"]?.int == 1)
    #expect(try parse("8.0").int == 8)
    #expect(o["a"] == .array([.bool(true), .bool(false), .null]))
  }

  @Test func decodesEscapes() throws {
    #expect(try parse(#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#) == .string("a\"b\\c/d\n\té😀"))
  }

  @Test(arguments: [
    "", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01x", "\"unterminated", "\"\\x\"", "\"\\ud800\"", "tru", "1 2",
    "{\"a\":1,\"a\":2}", "\"tab\there\"", "-", "1.", "1e",
  ])
  func refusesInvalidText(_ s: String) {
    #expect(throws: JSONSyntaxError.self) { try parse(s) }
  }

  @Test func boundsNesting() {
    let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
    #expect(throws: JSONSyntaxError.self) { try parse(deep) }
    let ok = String(repeating: "[", count: 50) + String(repeating: "]", count: 50)
    #expect((try? parse(ok)) != nil)
  }

  @Test func serializesWhatItParses() throws {
    let v = JSONValue.object(
      JSONObject([
        ("b", .string("q\"\\\n\u{1}é")), ("a", .array([.number(3), .number(0.5), .null, .bool(true)])),
        ("e", .object(JSONObject())), ("f", .array([])),
      ]))
    #expect(try parse(v.serialized()) == v)
    #expect(try parse(v.serialized(indent: 2)) == v)
    #expect(v.serialized().hasPrefix(#"{"b":"#))
  }
}
