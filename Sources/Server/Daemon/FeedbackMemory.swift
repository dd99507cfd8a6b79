import Engine
import Foundation

/// Finished generations and the ratings given to them, kept in memory until the durable
/// SQLite log (the learning issue) takes over: bounded to the newest `capacity` generations;
/// lost on restart. Thread-safe (one lock).
public final class FeedbackMemory: @unchecked Sendable {  // all state under `lock`
  public enum Rating: String, Sendable { case up, down }

  public struct Rated: Sendable {
    public var rating: Rating
    public var note: String?
    public var who: String?
    public var time: Date
  }

  public enum Refusal: Error, Equatable {
    case unknownRequest(String)
    case notYours(String)
  }

  public let capacity: Int
  private let lock = NSLock()
  private var records: [String: GenerationRecord] = [:]
  private var order: [String] = []
  private var head = 0
  /// Every rating given, oldest first, by request.
  private var ratings: [String: [Rated]] = [:]

  public init(capacity: Int = 100_000) { self.capacity = max(1, capacity) }

  /// Keeps a finished generation so that feedback can name it.
  public func remember(_ r: GenerationRecord) {
    lock.withLock {
      records[r.request] = r
      order.append(r.request)
      if order.count - head > capacity {
        let old = order[head]
        records[old] = nil
        ratings[old] = nil
        head += 1
        if head > capacity {
          order.removeFirst(head)
          head = 0
        }
      }
    }
  }

  /// Records a rating of `request` by `who`; a later rating replaces an earlier one as the
  /// effective one (both are kept). Refuses unknown requests and other identities' requests.
  public func rate(_ request: String, _ rating: Rating, note: String?, who: String?) throws(Refusal) {
    lock.lock()
    defer { lock.unlock() }
    guard let r = records[request] else { throw .unknownRequest(request) }
    if let owner = r.who, owner != who { throw .notYours(request) }
    ratings[request, default: []].append(Rated(rating: rating, note: note, who: who, time: Date()))
  }

  /// The effective rating of `request` (the latest), if any.
  public func rating(of request: String) -> Rated? { lock.withLock { ratings[request]?.last } }

  public var counts: (generations: Int, rated: Int) { lock.withLock { (records.count, ratings.count) } }
}
