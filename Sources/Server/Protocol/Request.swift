/// One request line, decoded and validated (DESIGN.md, "Wire protocol"). Every case carries the
/// client's `id`, which every reply to it echoes.
public enum Request: Sendable, Equatable {
  case generate(GenerateRequest)
  case feedback(FeedbackRequest)
  /// Cancel the client's own request `target` (the `id` it gave to `generate`).
  case cancel(id: String, target: String)
  case adapters(id: String)
  case load(id: String, name: String, path: String)
  case unload(id: String, name: String)
  case stats(id: String)
  /// Run the learner on `adapter` now; with `wait` the reply comes when it has finished.
  case learn(id: String, adapter: String, wait: Bool)
  case history(id: String, adapter: String)
  /// Make version `to` current; nil: the version before the current one (its parent).
  case rollback(id: String, adapter: String, to: Int?)
  case auth(id: String, key: String)

  public var id: String {
    switch self {
    case .generate(let g): return g.id
    case .feedback(let f): return f.id
    case .cancel(let id, _), .adapters(let id), .load(let id, _, _), .unload(let id, _), .stats(let id),
      .learn(let id, _, _), .history(let id, _), .rollback(let id, _, _), .auth(let id, _):
      return id
    }
  }

  /// The `op` field's value for this request.
  public var op: String {
    switch self {
    case .generate: return "generate"
    case .feedback: return "feedback"
    case .cancel: return "cancel"
    case .adapters: return "adapters"
    case .load: return "load"
    case .unload: return "unload"
    case .stats: return "stats"
    case .learn: return "learn"
    case .history: return "history"
    case .rollback: return "rollback"
    case .auth: return "auth"
    }
  }
}

/// `{"op":"generate",…}`: what to generate from, with which adapters, and how to sample.
public struct GenerateRequest: Sendable, Equatable {
  public enum Input: Sendable, Equatable {
    /// Raw text, tokenized as is.
    case prompt(String)
    /// A chat; the model's chat template is applied.
    case messages([ChatMessage])
  }

  public var id: String
  public var input: Input
  /// Empty: the base model alone. One entry from `adapter`, any number from `adapters`.
  public var adapters: [AdapterSelection]
  /// nil: the engine's default.
  public var maxTokens: Int?
  public var temperature: Double?
  public var topP: Double?
  /// 0 turns top-k off.
  public var topK: Int?
  public var seed: UInt64?
  public var stop: [String]
  /// Send `token` events as they come (default true); false sends only `start` and `done`.
  public var stream: Bool

  public init(
    id: String, input: Input, adapters: [AdapterSelection] = [], maxTokens: Int? = nil,
    temperature: Double? = nil, topP: Double? = nil, topK: Int? = nil, seed: UInt64? = nil,
    stop: [String] = [], stream: Bool = true
  ) {
    self.id = id
    self.input = input
    self.adapters = adapters
    self.maxTokens = maxTokens
    self.temperature = temperature
    self.topP = topP
    self.topK = topK
    self.seed = seed
    self.stop = stop
    self.stream = stream
  }
}

/// One chat turn of `messages`.
public struct ChatMessage: Sendable, Equatable {
  public enum Role: String, Sendable, Equatable, CaseIterable {
    case system, user, assistant
  }
  public var role: Role
  public var content: String

  public init(role: Role, content: String) {
    self.role = role
    self.content = content
  }
}

/// An adapter a request names: `name` (its current version) or `name@N`, at `scale`.
/// Requests name registered adapters only — never paths (those come in through `load`).
public struct AdapterSelection: Sendable, Equatable {
  public var name: String
  public var version: Int?
  public var scale: Double

  public init(name: String, version: Int? = nil, scale: Double = 1) {
    self.name = name
    self.version = version
    self.scale = scale
  }
}

/// `{"op":"feedback",…}`: a rating of a finished generation, by its server-assigned id.
public struct FeedbackRequest: Sendable, Equatable {
  public enum Rating: String, Sendable, Equatable {
    case up, down
  }
  public var id: String
  /// The `request` id a `start`/`done` event carried (`r-…`).
  public var request: String
  public var rating: Rating
  public var note: String?

  public init(id: String, request: String, rating: Rating, note: String? = nil) {
    self.id = id
    self.request = request
    self.rating = rating
    self.note = note
  }
}
