import Foundation
import Model

/// Which client request a job or event belongs to: the connection (an opaque number the
/// server chooses) and the `id` the client gave. Replies and cancels are keyed by it.
public struct RequestKey: Hashable, Sendable, CustomStringConvertible {
  public var owner: UInt64
  public var clientID: String
  public init(owner: UInt64, clientID: String) {
    self.owner = owner
    self.clientID = clientID
  }
  public var description: String { "c\(owner)/\(clientID)" }
}

/// One adapter of a request: a registered name (`name` or `name@N`) and its user scale.
public struct AdapterChoice: Sendable, Equatable {
  public var spec: String
  public var scale: Float
  public init(spec: String, scale: Float = 1) {
    self.spec = spec
    self.scale = scale
  }
}

/// A generation the scheduler should run: what to generate from, with which adapters, and how.
public struct GenerationJob: Sendable {
  public enum Input: Sendable, Equatable {
    /// Text tokenized as is (special tokens parsed), as `lorad generate --raw` does.
    case text(String)
    /// A chat; the model's chat template is applied.
    case chat([ChatMessage])
  }

  public var key: RequestKey
  public var input: Input
  /// Empty: the base model alone; several: a weighted sum of their deltas.
  public var adapters: [AdapterChoice]
  /// nil: the configuration's `defaultMaxTokens`.
  public var maxTokens: Int?
  public var sampling: SamplingOptions
  public var stop: [String]
  /// Send `token` events as text becomes final.
  public var stream: Bool
  /// Who asked (the auth identity), recorded with the generation.
  public var who: String?

  public init(
    key: RequestKey, input: Input, adapters: [AdapterChoice] = [], maxTokens: Int? = nil,
    sampling: SamplingOptions = SamplingOptions(), stop: [String] = [], stream: Bool = true, who: String? = nil
  ) {
    self.key = key
    self.input = input
    self.adapters = adapters
    self.maxTokens = maxTokens
    self.sampling = sampling
    self.stop = stop
    self.stream = stream
    self.who = who
  }
}
