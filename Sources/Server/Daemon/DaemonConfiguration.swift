import Engine
import Foundation

/// Everything `lorad serve` sets: the network side, the scheduler, and the life cycle.
public struct DaemonConfiguration: Sendable {
  public var server = ServerConfiguration()
  public var engine = EngineConfiguration()
  /// Seconds in-flight requests get to finish on SIGTERM before they are cancelled.
  public var graceSeconds = 10.0
  /// Seconds the last replies get to reach slow clients after the grace period.
  public var flushSeconds = 2.0
  public init() {}
}
