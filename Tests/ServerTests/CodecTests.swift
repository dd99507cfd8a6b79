import Server
import Testing

@Suite struct CodecTests {
  let decoder = RequestDecoder()

  func decode(_ line: String) -> Result<Request, ProtocolError> { decoder.decode(Array(line.utf8)) }

  func ok(_ line: String) throws -> Request {
    switch decode(line) {
    case .success(let r): return r
    case .failure(let e): throw e
    }
  }

  func failure(_ line: String) -> ProtocolError? {
    if case .failure(let e) = decode(line) { return e }
    return nil
  }

  @Test func generateWithPromptAndAllOptions() throws {
    let r = try ok(
      #"{"op":"generate","id":"q1","adapter":"support@3","prompt":"Hi","max_tokens":16,"temperature":0.7,"#
        + #""top_p":0.9,"top_k":40,"seed":42,"stop":["\n\n","END"],"stream":false,"future_field":{"x":1}}"#)
    var g = GenerateRequest(id: "q1", input: .prompt("Hi"), adapters: [AdapterSelection(name: "support", version: 3)])
    g.maxTokens = 16
    g.temperature = 0.7
    g.topP = 0.9
    g.topK = 40
    g.seed = 42
    g.stop = ["\n\n", "END"]
    g.stream = false
    #expect(r == .generate(g))
    #expect(r.id == "q1" && r.op == "generate")
  }

  @Test func generateWithMessagesNullAdapterAndDefaults() throws {
    let r = try ok(
      #"{"op":"generate","id":"q2","adapter":null,"messages":[{"role":"system","content":"Be brief."},"#
        + #"{"role":"user","content":"caf\u00e9 \ud83d\ude00"}]}"#)
    let g = GenerateRequest(
      id: "q2",
      input: .messages([ChatMessage(role: .system, content: "Be brief."), ChatMessage(role: .user, content: "café 😀")]))
    #expect(r == .generate(g))
    guard case .generate(let d) = r else { return }
    #expect(d.stream && d.adapters.isEmpty && d.maxTokens == nil)
  }

  @Test func generateWithAdaptersAndScales() throws {
    let r = try ok(
      #"{"op":"generate","id":"q3","prompt":"x","adapters":[{"name":"a","scale":0.5},{"name":"b@2"}]}"#)
    guard case .generate(let g) = r else { Issue.record("not generate"); return }
    #expect(g.adapters == [AdapterSelection(name: "a", scale: 0.5), AdapterSelection(name: "b", version: 2, scale: 1)])
  }

  @Test func everyOtherOp() throws {
    #expect(
      try ok(#"{"op":"feedback","id":"f1","request":"r-7","rating":"up"}"#)
        == .feedback(FeedbackRequest(id: "f1", request: "r-7", rating: .up)))
    #expect(
      try ok(#"{"op":"feedback","id":"f2","request":"r-7","rating":"down","note":"wrong"}"#)
        == .feedback(FeedbackRequest(id: "f2", request: "r-7", rating: .down, note: "wrong")))
    #expect(try ok(#"{"op":"cancel","id":"c1","target":"q1"}"#) == .cancel(id: "c1", target: "q1"))
    #expect(try ok(#"{"op":"adapters","id":"a1"}"#) == .adapters(id: "a1"))
    #expect(try ok(#"{"op":"load","id":"l1","name":"x","path":"/a/b"}"#) == .load(id: "l1", name: "x", path: "/a/b"))
    #expect(try ok(#"{"op":"unload","id":"u1","name":"x"}"#) == .unload(id: "u1", name: "x"))
    #expect(try ok(#"{"op":"stats","id":"s1"}"#) == .stats(id: "s1"))
    #expect(
      try ok(#"{"op":"learn","id":"k1","adapter":"x","wait":true}"#) == .learn(id: "k1", adapter: "x", wait: true))
    #expect(try ok(#"{"op":"learn","id":"k2","adapter":"x"}"#) == .learn(id: "k2", adapter: "x", wait: false))
    #expect(try ok(#"{"op":"history","id":"h1","adapter":"x"}"#) == .history(id: "h1", adapter: "x"))
    #expect(try ok(#"{"op":"rollback","id":"r1","adapter":"x","to":4}"#) == .rollback(id: "r1", adapter: "x", to: 4))
    #expect(try ok(#"{"op":"rollback","id":"r1","adapter":"x"}"#) == .rollback(id: "r1", adapter: "x", to: nil))
    #expect(try ok(#"{"op":"auth","id":"z1","key":"k"}"#) == .auth(id: "z1", key: "k"))
  }

  @Test func badBytesAndBadJSON() {
    var bytes = Array(#"{"op":"stats","id":""#.utf8)
    bytes += [0xFF, 0xFE]
    bytes += Array(#""}"#.utf8)
    guard case .failure(let e) = decoder.decode(bytes) else { Issue.record("accepted invalid UTF-8"); return }
    #expect(e.code == .badRequest && e.id == nil && e.message.contains("UTF-8"))
    // Overlong encoding and a lone surrogate escape.
    #expect(failure("{\"id\":\"\u{0}\"}")?.code == .badRequest)
    #expect(
      decoder.decode([0x7B, 0xC0, 0xAF, 0x7D])
        == .failure(ProtocolError(id: nil, code: .badRequest, message: "the line is not valid UTF-8 (at byte 1)")))
    #expect(failure(#"{"op":"stats","id":"\udc00"}"#)?.message.contains("UTF-8") == true)
    for bad in [
      "not json", "{", #"{"op":"stats","id":"s"} x"#, #"{"op":'stats'}"#, "[1,]", #"{"a":01}"#, #"{"a":1,"a":2}"#,
      "{\"a\":\"\t\"}",
    ] {
      let e = failure(bad)
      #expect(e?.code == .badRequest, "\(bad)")
      #expect(e?.message.hasPrefix("invalid JSON") == true, "\(bad): \(e?.message ?? "")")
    }
    #expect(failure("[1,2]")?.message == "a request is a JSON object, got an array")
    #expect(failure(#"{"id":"x","op":"generate","prompt":"p","seed":1e999}"#)?.message.contains("out of range") == true)
  }

  @Test func nestingPastTheBound() {
    let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
    #expect(failure(deep)?.message == "JSON nests deeper than 32 levels")
    let line =
      #"{"op":"stats","id":"s","x":"# + String(repeating: "[", count: 31) + String(repeating: "]", count: 31) + "}"
    #expect(failure(line) == nil)
    let over =
      #"{"op":"stats","id":"s","x":"# + String(repeating: "[", count: 32) + String(repeating: "]", count: 32) + "}"
    #expect(failure(over)?.code == .badRequest)
  }

  @Test func missingAndMistypedFieldsEchoTheID() {
    let cases: [(String, ErrorCode, String?, String)] = [
      (#"{"op":"stats"}"#, .badRequest, nil, "missing field 'id'"),
      (#"{"op":"stats","id":7}"#, .badRequest, nil, "field 'id' must be a string, got a number"),
      (#"{"id":"x"}"#, .badRequest, "x", "missing field 'op'"),
      (#"{"id":"x","op":"fly"}"#, .unknownOp, "x", "unknown op \"fly\""),
      (#"{"id":"x","op":"generate"}"#, .badRequest, "x", "missing field 'prompt' (or 'messages')"),
      (
        #"{"id":"x","op":"generate","prompt":"p","messages":[]}"#, .badRequest, "x",
        "give either 'prompt' or 'messages', not both"
      ),
      (#"{"id":"x","op":"generate","prompt":5}"#, .badRequest, "x", "field 'prompt' must be a string, got a number"),
      (
        #"{"id":"x","op":"generate","messages":[]}"#, .badRequest, "x",
        "field 'messages' must be a non-empty list of {\"role\",\"content\"} objects"
      ),
      (
        #"{"id":"x","op":"generate","messages":[{"role":"bot","content":"c"}]}"#, .badRequest, "x",
        "messages[0].role must be \"system\", \"user\" or \"assistant\""
      ),
      (
        #"{"id":"x","op":"generate","prompt":"p","stream":"yes"}"#, .badRequest, "x",
        "field 'stream' must be true or false, got a string"
      ),
      (
        #"{"id":"x","op":"generate","prompt":"p","stop":"END"}"#, .badRequest, "x",
        "field 'stop' must be a list of strings"
      ),
      (
        #"{"id":"x","op":"generate","prompt":"p","adapter":"../etc"}"#, .badRequest, "x",
        "field 'adapter': \"../etc\" is not an adapter name (letters, digits, '_', '.', '-'; not starting with '.' or '-'; at most 100 bytes)"
      ),
      (
        #"{"id":"x","op":"generate","prompt":"p","adapter":"a@v"}"#, .badRequest, "x",
        "field 'adapter': the version after '@' must be a number, as in a@3"
      ),
      (
        #"{"id":"x","op":"generate","prompt":"p","adapter":"a","adapters":[]}"#, .badRequest, "x",
        "give either 'adapter' or 'adapters', not both"
      ),
      (
        #"{"id":"x","op":"generate","prompt":"p","adapters":[{"scale":1}]}"#, .badRequest, "x",
        "missing field 'adapters[0].name'"
      ),
      (
        #"{"id":"x","op":"feedback","request":"r","rating":"meh"}"#, .badRequest, "x",
        "field 'rating' must be \"up\" or \"down\""
      ),
      (#"{"id":"x","op":"cancel"}"#, .badRequest, "x", "missing field 'target'"),
      (#"{"id":"x","op":"load","name":"a"}"#, .badRequest, "x", "missing field 'path'"),
      (#"{"id":"x","op":"auth"}"#, .badRequest, "x", "missing field 'key'"),
    ]
    for (line, code, id, message) in cases {
      #expect(failure(line) == ProtocolError(id: id, code: code, message: message), "\(line)")
    }
  }

  @Test func outOfRangeNumbers() {
    let cases: [(String, String)] = [
      (#""max_tokens":0"#, "field 'max_tokens' must be an integer from 1 to 32768, got 0"),
      (#""max_tokens":1.5"#, "field 'max_tokens' must be an integer from 1 to 32768, got 1.5"),
      (#""max_tokens":"8""#, "field 'max_tokens' must be an integer, got a string"),
      (#""temperature":-0.1"#, "field 'temperature' must be a number from 0.0 to 10.0, got -0.1"),
      (#""top_p":0"#, "field 'top_p' must be above 0 and at most 1"),
      (#""top_p":1.01"#, "field 'top_p' must be a number from 0.0 to 1.0, got 1.01"),
      (#""top_k":-1"#, "field 'top_k' must be an integer from 0 to 1000000, got -1"),
      (#""seed":-5"#, "field 'seed' must be an integer from 0 to 9223372036854775807, got -5"),
      (
        #""adapters":[{"name":"a","scale":100}]"#,
        "field 'adapters[0].scale' must be a number from -16.0 to 16.0, got 100"
      ),
    ]
    for (field, message) in cases {
      let line = #"{"id":"x","op":"generate","prompt":"p","# + field + "}"
      #expect(failure(line) == ProtocolError(id: "x", code: .badRequest, message: message), "\(field)")
    }
    #expect(failure(#"{"id":"x","op":"rollback","adapter":"a","to":-1}"#)?.code == .badRequest)
    // An integral double is an integer.
    #expect(failure(#"{"id":"x","op":"generate","prompt":"p","max_tokens":8.0}"#) == nil)
  }

  @Test func replyLinesUseDesignFieldNames() {
    func text(_ r: Reply) -> String { String(decoding: r.line, as: UTF8.self) }
    #expect(
      text(.start(id: "q1", request: "r-1", adapter: "support", version: 3))
        == #"{"id":"q1","event":"start","request":"r-1","adapter":"support","version":3}"# + "\n")
    #expect(
      text(.start(id: "q1", request: "r-1", adapter: nil, version: nil))
        == #"{"id":"q1","event":"start","request":"r-1","adapter":null,"version":null}"# + "\n")
    #expect(
      text(.token(id: "q1", text: "a\"b\\c\n\u{1}é")) == #"{"id":"q1","event":"token","text":"a\"b\\c\n\u0001é"}"#
        + "\n")
    #expect(
      text(
        .done(id: "q1", request: "r-1", text: "Hi", finish: .length, usage: Usage(promptTokens: 5, completionTokens: 2))
      )
        == #"{"id":"q1","event":"done","request":"r-1","text":"Hi","finish":"length","usage":{"prompt_tokens":5,"completion_tokens":2}}"#
        + "\n")
    #expect(text(.ok(id: "f1")) == #"{"id":"f1","event":"ok"}"# + "\n")
    #expect(
      text(.ok(id: "a1", fields: ["adapters": .array([.string("x")]), "count": .integer(1)]))
        == #"{"id":"a1","event":"ok","adapters":["x"],"count":1}"# + "\n")
    #expect(
      text(.error(id: nil, code: .tooLarge, message: "m"))
        == #"{"id":null,"event":"error","code":"too_large","message":"m"}"# + "\n")
    #expect(
      ErrorCode.allCases.map(\.rawValue) == [
        "bad_request", "unknown_op", "adapter_not_found", "unknown_request", "too_large", "context_overflow",
        "overloaded",
        "unauthorized", "internal",
      ])
  }

  @Test func replyRoundTripsThroughTheParser() throws {
    let r = Reply.token(id: "q", text: "😀 \u{7f} \t tab")
    guard case .object(let o) = try JSONParser.parse(r.line.dropLast()) else { Issue.record("not an object"); return }
    #expect(o == r.json)
  }
}
