import Foundation
import Model

@testable import Learning

/// Fresh state directories and sample generations for the log tests.
enum LogFixture {
  /// A new, empty directory under the system's temporary directory.
  static func directory(_ name: String = "state") -> String {
    let dir = FileManager.default.temporaryDirectory
      .appendingPathComponent("lorad-log-tests-\(getpid())")
      .appendingPathComponent("\(UUID().uuidString.prefix(8))-\(name)").path
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
  }

  static func remove(_ dir: String) { try? FileManager.default.removeItem(atPath: dir) }

  /// A generation whose every field differs from the defaults; `n` varies the content.
  static func generation(
    _ request: String, n: Int = 1, who: String? = nil, adapter: String? = "support", version: Int? = 3,
    prompt: String? = nil, completion: String? = nil, time: Date = Date(timeIntervalSince1970: 1_790_000_000.25)
  ) -> GenerationRecord {
    GenerationRecord(
      request: request, time: time, who: who, adapter: adapter, version: adapter == nil ? nil : version,
      prompt: prompt ?? "<|im_start|>user\nQuestion \(n)?<|im_end|>\n<|im_start|>assistant\n",
      promptTokens: [1, 9690, 198, Int32(n), 2, Int32.max, Int32.min],
      completion: completion ?? "Answer \(n).",
      completionTokens: [4, Int32(100 + n), 2],
      logprobs: [-0.25, -Float(n) / 7, -1e-7],
      sampling: .init(
        temperature: 0.7, topP: 0.9, topK: 40, seed: UInt64.max - UInt64(n), maxTokens: 128, stop: ["\n\n", "END"]),
      finish: n.isMultiple(of: 2) ? .length : .stop)
  }

  /// A log with a short batch interval, opened in `dir`.
  static func open(
    _ dir: String, _ tweak: (inout FeedbackLog.Configuration) -> Void = { _ in }
  ) throws -> FeedbackLog {
    var c = FeedbackLog.Configuration()
    c.batchInterval = 0.02
    tweak(&c)
    return try FeedbackLog(stateDirectory: dir, configuration: c)
  }
}
