import Foundation
import Model

/// Why the engine refused or abandoned a request; the server maps these onto the protocol's
/// error codes one to one.
public enum EngineFailure: Sendable, Equatable {
  case badRequest(String)
  case adapterNotFound(String)
  case contextOverflow(String)
  case overloaded(String)
  case internalError(String)

  public var message: String {
    switch self {
    case .badRequest(let m), .adapterNotFound(let m), .contextOverflow(let m), .overloaded(let m),
      .internalError(let m):
      return m
    }
  }
}

/// One adapter a generation applied, at its exact version.
public struct AppliedAdapter: Sendable, Equatable {
  public var name: String
  public var version: Int
  public var scale: Float
  public init(name: String, version: Int, scale: Float) {
    self.name = name
    self.version = version
    self.scale = scale
  }
}

/// Everything about a finished generation: what `done` reports and what the feedback log keeps.
public struct GenerationRecord: Sendable {
  /// The server-assigned id (`r-…`) that feedback names.
  public var request: String
  public var key: RequestKey
  public var who: String?
  public var adapters: [AppliedAdapter]
  public var promptText: String
  public var promptTokens: [Int32]
  public var completionText: String
  public var completionTokens: [Int32]
  /// log π(token | context) of each completion token under the serving policy (the model's
  /// own distribution, before temperature and truncation).
  public var logprobs: [Float]
  public var sampling: SamplingOptions
  public var maxTokens: Int
  public var stop: [String]
  public var finish: FinishReason
  /// When the request was accepted.
  public var received: Date
  /// Seconds from acceptance to the first completion token (nil: none came) and to the end.
  public var firstTokenSeconds: Double?
  public var totalSeconds: Double
}

/// What the scheduler tells the server, on the compute thread, in order per request:
/// `started`, any `token`s, then `done` — or a single `failed`.
public enum EngineEvent: Sendable {
  case started(RequestKey, request: String, adapters: [AppliedAdapter])
  case token(RequestKey, text: String)
  case done(GenerationRecord)
  case failed(RequestKey, EngineFailure)
}

/// The answer to `submit`.
public enum SubmitResult: Sendable, Equatable {
  /// Queued; `request` is the id its events and feedback will carry.
  case accepted(request: String)
  case rejected(EngineFailure)
}

/// Counters and timings of the engine, for `stats`.
public struct EngineStats: Sendable, Equatable {
  public var submitted = 0
  public var completed = 0
  public var cancelled = 0
  public var failed = 0
  public var overloaded = 0
  public var live = 0
  public var queued = 0
  public var steps = 0
  public var promptTokens = 0
  public var generatedTokens = 0
  /// Seconds the compute thread spent in forward steps.
  public var busySeconds = 0.0
  public var peakLive = 0
  public init() {}
}
