/// Why a generation ended (`done`'s `finish`).
public enum FinishReason: String, Sendable, Equatable {
  case stop, length, cancelled
}

/// Token counts of one generation (`done`'s `usage`).
public struct Usage: Sendable, Equatable {
  public var promptTokens: Int
  public var completionTokens: Int

  public init(promptTokens: Int, completionTokens: Int) {
    self.promptTokens = promptTokens
    self.completionTokens = completionTokens
  }
}

/// One reply line (DESIGN.md, "Replies"); `event` says which. `line` is its exact wire form.
public enum Reply: Sendable, Equatable {
  /// `{"id","event":"start","request","adapter","version"}`; adapter and version are null for
  /// the base model.
  case start(id: String, request: String, adapter: String?, version: Int?)
  /// `{"id","event":"token","text"}` — only when streaming.
  case token(id: String, text: String)
  /// `{"id","event":"done","request","text","finish","usage":{"prompt_tokens","completion_tokens"}}`
  case done(id: String, request: String, text: String, finish: FinishReason, usage: Usage)
  /// `{"id","event":"ok", …fields}` — the answer to the other ops; `fields` follow `event`.
  case ok(id: String, fields: JSONObject = JSONObject())
  /// `{"id","event":"error","code","message"}`; `id` is null when the line had none readable.
  case error(id: String?, code: ErrorCode, message: String)

  /// The reply as a JSON object, keys in wire order.
  public var json: JSONObject {
    var o = JSONObject()
    switch self {
    case .start(let id, let request, let adapter, let version):
      o["id"] = .string(id)
      o["event"] = .string("start")
      o["request"] = .string(request)
      o["adapter"] = adapter.map { .string($0) } ?? .null
      o["version"] = version.map { .integer(Int64($0)) } ?? .null
    case .token(let id, let text):
      o["id"] = .string(id)
      o["event"] = .string("token")
      o["text"] = .string(text)
    case .done(let id, let request, let text, let finish, let usage):
      o["id"] = .string(id)
      o["event"] = .string("done")
      o["request"] = .string(request)
      o["text"] = .string(text)
      o["finish"] = .string(finish.rawValue)
      o["usage"] = .object([
        "prompt_tokens": .integer(Int64(usage.promptTokens)),
        "completion_tokens": .integer(Int64(usage.completionTokens)),
      ])
    case .ok(let id, let fields):
      o["id"] = .string(id)
      o["event"] = .string("ok")
      for (k, v) in fields.pairs where k != "id" && k != "event" { o[k] = v }
    case .error(let id, let code, let message):
      o["id"] = id.map { .string($0) } ?? .null
      o["event"] = .string("error")
      o["code"] = .string(code.rawValue)
      o["message"] = .string(message)
    }
    return o
  }

  /// The bytes sent: compact JSON and a trailing `\n`.
  public var line: [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(64)
    JSONWriter.write(.object(json), into: &out)
    out.append(0x0A)
    return out
  }
}
