import Foundation
import Model

extension FeedbackLog {
  /// Records a rating of a finished generation and returns once it is durably committed (the
  /// daemon acknowledges the feedback only then). A later rating of the same request replaces
  /// this one as the effective rating; both stay in the history.
  ///
  /// Throws `unknownRequest` when no generation has that id (queued generations are committed
  /// first, so rating one at once works) and `notYourRequest` when the generation was made by
  /// an identity and `who` is not that identity.
  @discardableResult
  public func recordFeedback(
    request: String, rating: FeedbackRating, note: String? = nil, who: String? = nil, time: Date = Date()
  ) throws -> FeedbackEvent {
    try locked {
      try withQueuedCommitted {
        try db.transaction {
          let owner = statements.ownerOf
          try owner.bind([.text(request)])
          guard try owner.step() else {
            owner.reset()
            throw FeedbackLogError.unknownRequest(request)
          }
          let madeBy = owner.optionalText(0)
          owner.reset()
          if let madeBy, madeBy != who { throw FeedbackLogError.notYourRequest(request: request) }
          try statements.insertFeedback.run([
            .text(request), .text(rating.rawValue), note.map(SQLiteValue.text) ?? .null,
            .real(time.timeIntervalSince1970), who.map(SQLiteValue.text) ?? .null,
          ])
          return FeedbackEvent(
            seq: db.lastInsertRowID, request: request, rating: rating, note: note, time: time, who: who)
        }
      }
    }
  }

  /// Every feedback event of a request, oldest first; the last one is the effective rating.
  public func feedbackHistory(request: String) throws -> [FeedbackEvent] {
    try locked {
      try withQueuedCommitted {
        let s = try db.prepare(
          "SELECT seq, request, rating, note, time, who FROM feedback WHERE request = ?1 ORDER BY seq")
        try s.bind([.text(request)])
        var out: [FeedbackEvent] = []
        while try s.step() { out.append(try feedbackEvent(s)) }
        return out
      }
    }
  }

  /// The effective (latest) rating of a request, nil when it has none.
  public func effectiveFeedback(request: String) throws -> FeedbackEvent? {
    try feedbackHistory(request: request).last
  }

  /// The logged generation with that request id, nil when there is none.
  public func generation(request: String) throws -> GenerationRecord? {
    try locked {
      try withQueuedCommitted {
        let s = try db.prepare(
          """
          SELECT request, time, who, adapter, version, prompt, prompt_tokens, completion, completion_tokens,
            logprobs, temperature, top_p, top_k, seed, max_tokens, stop, finish
          FROM generations WHERE request = ?1
          """)
        try s.bind([.text(request)])
        return try s.step() ? try generationRecord(s) : nil
      }
    }
  }

  // MARK: - Rows

  func feedbackEvent(_ s: SQLiteStatement, from c: Int32 = 0) throws -> FeedbackEvent {
    FeedbackEvent(
      seq: s.int64(c), request: s.text(c + 1), rating: try rating(s.text(c + 2)), note: s.optionalText(c + 3),
      time: Date(timeIntervalSince1970: s.double(c + 4)), who: s.optionalText(c + 5))
  }

  func rating(_ text: String) throws -> FeedbackRating {
    guard let r = FeedbackRating(rawValue: text) else {
      throw FeedbackLogError.corrupt(path: path, reason: "a feedback row has rating '\(text)'")
    }
    return r
  }

  /// Reads the 17 generation columns in `generations` order.
  func generationRecord(_ s: SQLiteStatement) throws -> GenerationRecord {
    let request = s.text(0)
    guard let finish = FinishReason(rawValue: s.text(16)) else {
      throw FeedbackLogError.corrupt(path: path, reason: "generation \(request) has finish '\(s.text(16))'")
    }
    let stopText = s.text(15)
    guard let stop = try? JSONDecoder().decode([String].self, from: Data(stopText.utf8)) else {
      throw FeedbackLogError.corrupt(path: path, reason: "generation \(request) has stop list '\(stopText)'")
    }
    return GenerationRecord(
      request: request, time: Date(timeIntervalSince1970: s.double(1)), who: s.optionalText(2),
      adapter: s.optionalText(3), version: s.optionalInt64(4).map { Int($0) }, prompt: s.text(5),
      promptTokens: try tokens(s, 6, request), completion: s.text(7), completionTokens: try tokens(s, 8, request),
      logprobs: try logprobs(s, 9, request),
      sampling: .init(
        temperature: s.double(10), topP: s.double(11), topK: s.int(12), seed: UInt64(bitPattern: s.int64(13)),
        maxTokens: s.int(14), stop: stop),
      finish: finish)
  }

  func tokens(_ s: SQLiteStatement, _ column: Int32, _ request: String) throws -> [Int32] {
    guard let t = s.withBlob(column, TokenBlob.int32s) else {
      throw FeedbackLogError.corrupt(path: path, reason: "generation \(request): a token blob is not whole Int32s")
    }
    return t
  }

  func logprobs(_ s: SQLiteStatement, _ column: Int32, _ request: String) throws -> [Float] {
    guard let t = s.withBlob(column, TokenBlob.floats) else {
      throw FeedbackLogError.corrupt(
        path: path, reason: "generation \(request): the logprob blob is not whole Float32s")
    }
    return t
  }
}
