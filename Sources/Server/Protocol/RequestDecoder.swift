/// Bounds on what a request line may ask for. Out-of-range values get `bad_request`.
public struct RequestLimits: Sendable, Equatable {
  /// Deepest array/object nesting accepted (the parser refuses deeper before recursing further).
  public var maxDepth = 32
  public var maxIDBytes = 256
  public var maxTokens = 32_768
  public var maxTemperature = 10.0
  public var maxTopK = 1_000_000
  public var maxStops = 16
  public var maxStopBytes = 256
  public var maxMessages = 1_024
  public var maxAdapters = 8
  /// Adapter scales must lie in -maxScale...maxScale.
  public var maxScale = 16.0

  public init() {}
}

/// Turns one request line into a `Request`, or the `ProtocolError` to answer it with. Unknown
/// fields are ignored (DESIGN: fields may be added); `null` counts as absent for optional
/// fields, and as "the base model" for `adapter`.
public struct RequestDecoder: Sendable {
  public var limits: RequestLimits

  public init(limits: RequestLimits = RequestLimits()) {
    self.limits = limits
  }

  public func decode(_ line: some Collection<UInt8>) -> Result<Request, ProtocolError> {
    let value: JSONValue
    do {
      value = try JSONParser.parse(line, maxDepth: limits.maxDepth)
    } catch {
      return .failure(ProtocolError(id: nil, code: .badRequest, message: error.message))
    }
    guard case .object(let obj) = value else {
      return .failure(
        ProtocolError(id: nil, code: .badRequest, message: "a request is a JSON object, got \(value.typeName)"))
    }
    do throws(ProtocolError) {
      return .success(try decode(obj))
    } catch {
      return .failure(error)
    }
  }

  public func decode(_ obj: JSONObject) throws(ProtocolError) -> Request {
    // Read the id first, so every later error can echo it.
    var f = Fields(obj: obj, id: nil)
    let id = try f.string("id", maxBytes: limits.maxIDBytes)
    f.id = id
    let op = try f.string("op")
    switch op {
    case "generate": return .generate(try generate(f, id: id))
    case "feedback":
      guard let rating = FeedbackRequest.Rating(rawValue: try f.string("rating")) else {
        throw f.bad("field 'rating' must be \"up\" or \"down\"")
      }
      return .feedback(
        FeedbackRequest(id: id, request: try f.string("request"), rating: rating, note: try f.optionalString("note")))
    case "cancel": return .cancel(id: id, target: try f.string("target"))
    case "adapters": return .adapters(id: id)
    case "load":
      return .load(id: id, name: try adapterName(f, "name", allowVersion: false).name, path: try f.string("path"))
    case "unload": return .unload(id: id, name: try adapterName(f, "name", allowVersion: false).name)
    case "stats": return .stats(id: id)
    case "learn":
      return .learn(
        id: id, adapter: try adapterName(f, "adapter", allowVersion: false).name,
        wait: try f.optionalBool("wait") ?? false)
    case "history": return .history(id: id, adapter: try adapterName(f, "adapter", allowVersion: false).name)
    case "rollback":
      let adapter = try adapterName(f, "adapter", allowVersion: false).name
      return .rollback(id: id, adapter: adapter, to: try f.optionalInt("to", in: 0...999_999_999))
    case "auth": return .auth(id: id, key: try f.string("key"))
    default:
      throw ProtocolError(id: id, code: .unknownOp, message: "unknown op \"\(op)\"")
    }
  }

  private func generate(_ f: Fields, id: String) throws(ProtocolError) -> GenerateRequest {
    let input: GenerateRequest.Input
    switch (f.present("prompt"), f.present("messages")) {
    case (true, true): throw f.bad("give either 'prompt' or 'messages', not both")
    case (false, false): throw f.bad("missing field 'prompt' (or 'messages')")
    case (true, false): input = .prompt(try f.string("prompt"))
    case (false, true): input = .messages(try messages(f))
    }
    var adapters: [AdapterSelection] = []
    switch (f.present("adapter"), f.present("adapters")) {
    case (true, true): throw f.bad("give either 'adapter' or 'adapters', not both")
    case (true, false): adapters = [try adapterName(f, "adapter", allowVersion: true)]
    case (false, true): adapters = try adapterList(f)
    case (false, false): break
    }
    var g = GenerateRequest(id: id, input: input, adapters: adapters)
    g.maxTokens = try f.optionalInt("max_tokens", in: 1...limits.maxTokens)
    g.temperature = try f.optionalDouble("temperature", in: 0...limits.maxTemperature)
    g.topP = try f.optionalDouble("top_p", in: 0...1)
    if g.topP == 0 { throw f.bad("field 'top_p' must be above 0 and at most 1") }
    g.topK = try f.optionalInt("top_k", in: 0...limits.maxTopK)
    g.seed = try f.optionalInt("seed", in: 0...Int.max).map { UInt64($0) }
    if let stop = f.obj["stop"], stop != .null {
      guard case .array(let items) = stop else { throw f.bad("field 'stop' must be a list of strings") }
      if items.count > limits.maxStops { throw f.bad("field 'stop' has more than \(limits.maxStops) strings") }
      for item in items {
        guard case .string(let s) = item, !s.isEmpty, s.utf8.count <= limits.maxStopBytes else {
          throw f.bad("field 'stop' must hold non-empty strings of at most \(limits.maxStopBytes) bytes")
        }
        g.stop.append(s)
      }
    }
    g.stream = try f.optionalBool("stream") ?? true
    return g
  }

  private func messages(_ f: Fields) throws(ProtocolError) -> [ChatMessage] {
    guard case .array(let items) = f.obj["messages"]!, !items.isEmpty else {
      throw f.bad("field 'messages' must be a non-empty list of {\"role\",\"content\"} objects")
    }
    if items.count > limits.maxMessages { throw f.bad("field 'messages' has more than \(limits.maxMessages) turns") }
    var out: [ChatMessage] = []
    for (k, item) in items.enumerated() {
      guard case .object(let m) = item else { throw f.bad("messages[\(k)] must be an object") }
      guard case .string(let r)? = m["role"], let role = ChatMessage.Role(rawValue: r) else {
        throw f.bad("messages[\(k)].role must be \"system\", \"user\" or \"assistant\"")
      }
      guard case .string(let content)? = m["content"] else { throw f.bad("messages[\(k)].content must be a string") }
      out.append(ChatMessage(role: role, content: content))
    }
    return out
  }

  private func adapterList(_ f: Fields) throws(ProtocolError) -> [AdapterSelection] {
    let v = f.obj["adapters"]!
    guard case .array(let items) = v else {
      throw f.bad("field 'adapters' must be a list of {\"name\",\"scale\"} objects")
    }
    if items.count > limits.maxAdapters { throw f.bad("field 'adapters' has more than \(limits.maxAdapters) entries") }
    var out: [AdapterSelection] = []
    for (k, item) in items.enumerated() {
      guard case .object(let o) = item else { throw f.bad("adapters[\(k)] must be an object") }
      let sub = Fields(obj: o, id: f.id, prefix: "adapters[\(k)].")
      var sel = try adapterName(sub, "name", allowVersion: true)
      sel.scale = try sub.optionalDouble("scale", in: -limits.maxScale...limits.maxScale) ?? 1
      out.append(sel)
    }
    return out
  }

  /// `name` or (when allowed) `name@N`, with the registry's name rules: [A-Za-z0-9_.-], at
  /// most 100 bytes, not starting with '.' or '-', not ending in `.gguf`. Never a path.
  private func adapterName(_ f: Fields, _ key: String, allowVersion: Bool) throws(ProtocolError) -> AdapterSelection {
    let spec = try f.string(key)
    var name = Substring(spec)
    var version: Int?
    if allowVersion, let at = spec.lastIndex(of: "@") {
      name = spec[..<at]
      let v = spec[spec.index(after: at)...]
      guard !v.isEmpty, v.count <= 9, v.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(v) else {
        throw f.bad("field '\(f.prefix)\(key)': the version after '@' must be a number, as in \(name)@3")
      }
      version = n
    }
    let ok =
      !name.isEmpty && name.utf8.count <= 100 && !name.hasPrefix(".") && !name.hasPrefix("-")
      && !name.hasSuffix(".gguf")
      && name.unicodeScalars.allSatisfy {
        switch $0 {
        case "a"..."z", "A"..."Z", "0"..."9", "_", ".", "-": return true
        default: return false
        }
      }
    guard ok else {
      throw f.bad(
        "field '\(f.prefix)\(key)': \"\(spec)\" is not an adapter name (letters, digits, '_', '.', '-';"
          + " not starting with '.' or '-'; at most 100 bytes)")
    }
    return AdapterSelection(name: String(name), version: version)
  }
}

/// Typed access to one object's fields, producing `bad_request` errors that name the field.
struct Fields {
  let obj: JSONObject
  var id: String?
  var prefix = ""

  func bad(_ message: String) -> ProtocolError { ProtocolError(id: id, code: .badRequest, message: message) }

  /// The field is there and not null.
  func present(_ key: String) -> Bool { obj[key].map { $0 != .null } ?? false }

  func string(_ key: String, maxBytes: Int = .max) throws(ProtocolError) -> String {
    guard let v = obj[key] else { throw bad("missing field '\(prefix)\(key)'") }
    guard case .string(let s) = v else { throw bad("field '\(prefix)\(key)' must be a string, got \(v.typeName)") }
    if s.utf8.count > maxBytes { throw bad("field '\(prefix)\(key)' is longer than \(maxBytes) bytes") }
    return s
  }

  func optionalString(_ key: String) throws(ProtocolError) -> String? {
    guard let v = obj[key], v != .null else { return nil }
    return try string(key)
  }

  func optionalBool(_ key: String) throws(ProtocolError) -> Bool? {
    guard let v = obj[key], v != .null else { return nil }
    guard case .bool(let b) = v else { throw bad("field '\(prefix)\(key)' must be true or false, got \(v.typeName)") }
    return b
  }

  /// An integer in `range`; a number with an integral value (`3.0`) counts.
  func optionalInt(_ key: String, in range: ClosedRange<Int>) throws(ProtocolError) -> Int? {
    guard let v = obj[key], v != .null else { return nil }
    let n: Int?
    switch v {
    case .integer(let i): n = Int(exactly: i)
    case .double(let d): n = d.rounded() == d && abs(d) < 9e18 ? Int(d) : nil
    default:
      throw bad("field '\(prefix)\(key)' must be an integer, got \(v.typeName)")
    }
    guard let n, range.contains(n) else {
      throw bad(
        "field '\(prefix)\(key)' must be an integer from \(range.lowerBound) to \(range.upperBound), got \(JSONWriter.string(v))"
      )
    }
    return n
  }

  func optionalDouble(_ key: String, in range: ClosedRange<Double>) throws(ProtocolError) -> Double? {
    guard let v = obj[key], v != .null else { return nil }
    let d: Double
    switch v {
    case .integer(let i): d = Double(i)
    case .double(let x): d = x
    default: throw bad("field '\(prefix)\(key)' must be a number, got \(v.typeName)")
    }
    guard range.contains(d) else {
      throw bad(
        "field '\(prefix)\(key)' must be a number from \(range.lowerBound) to \(range.upperBound), got \(JSONWriter.string(v))"
      )
    }
    return d
  }
}
