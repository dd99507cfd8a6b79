import Foundation
import Testing

@testable import Model

/// The committed golden fixture `Fixtures/tokenizer.json`: llama.cpp's ids for SmolLM2-135M's
/// tokenizer (add_bos false), with special tokens parsed (`ids`) and not (`special_false_ids`).
struct RealTokenizerFixture: Decodable {
  struct Case: Decodable {
    var text: String
    var ids: [Int32]
    var specialFalseIDs: [Int32]?

    enum CodingKeys: String, CodingKey {
      case text, ids
      case specialFalseIDs = "special_false_ids"
    }
  }
  var cases: [Case]
  /// Every id llama.cpp's `llama_vocab_is_eog` accepts.
  var eogIDs: [Int32]?

  enum CodingKeys: String, CodingKey {
    case cases
    case eogIDs = "eog_ids"
  }

  static let packageRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  static let modelPath = packageRoot.appendingPathComponent(
    "models/SmolLM2-135M-Instruct.Q4_1.gguf"
  ).path
  static let fixturePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/tokenizer.json").path

  static var isAvailable: Bool {
    FileManager.default.fileExists(atPath: modelPath)
      && FileManager.default.fileExists(atPath: fixturePath)
  }

  static func load() throws -> RealTokenizerFixture {
    try JSONDecoder().decode(
      RealTokenizerFixture.self, from: Data(contentsOf: URL(fileURLWithPath: fixturePath)))
  }
}

/// What a real-model test needs and is missing: `make test` fetches the model first, so a
/// missing file is a failure that says what to run, never a silent pass.
struct MissingReference: Error, CustomStringConvertible {
  var path: String
  var description: String { "\(path) is missing: run `make model` (make test does it) before the tests" }
}

/// The tokenizer of the real default model.
func loadRealTokenizer() throws -> Tokenizer? {
  for p in [RealTokenizerFixture.modelPath, RealTokenizerFixture.fixturePath]
  where !FileManager.default.fileExists(atPath: p) {
    throw MissingReference(path: p)
  }
  return try LoadedModel.tokenizerOnly(path: RealTokenizerFixture.modelPath)
}

struct TokenizerRealModelTests {
  @Test func idsMatchLlamaCpp() throws {
    guard let tokenizer = try loadRealTokenizer() else { return }
    let fixture = try RealTokenizerFixture.load()
    #expect(!fixture.cases.isEmpty)
    if let eog = fixture.eogIDs {
      #expect((0..<Int32(tokenizer.vocabSize)).filter(tokenizer.isEndOfGeneration) == eog)
    }
    for c in fixture.cases {
      #expect(tokenizer.encode(c.text, addSpecial: false) == c.ids, "\(c.text.debugDescription)")
      if let plain = c.specialFalseIDs {
        #expect(
          tokenizer.encode(c.text, addSpecial: false, parseSpecial: false) == plain,
          "parseSpecial false: \(c.text.debugDescription)")
      }
      // SmolLM's tokenizer loses nothing: decoding with special tokens gives the text back.
      #expect(tokenizer.decode(c.ids, special: true) == c.text, "\(c.text.debugDescription)")
    }
  }

  @Test func chatMarkersOfSmolLM() throws {
    guard let tokenizer = try loadRealTokenizer() else { return }
    #expect(tokenizer.vocabSize == 49152)
    let start = try #require(tokenizer.id(of: "<|im_start|>"))
    let end = try #require(tokenizer.id(of: "<|im_end|>"))
    let text = try #require(tokenizer.id(of: "<|endoftext|>"))
    #expect(tokenizer.encode("<|im_start|>user\nHi<|im_end|>", addSpecial: false).first == start)
    #expect(tokenizer.isEndOfGeneration(end))
    #expect(tokenizer.isEndOfGeneration(text))
    #expect(!tokenizer.isEndOfGeneration(start))
    // The streamed pieces of a generation add up to its decoded text.
    let ids = tokenizer.encode("Déjà vu 🦙🚀 — 東京 ok", addSpecial: false)
    var stream = StreamingDecoder(tokenizer: tokenizer)
    let streamed = ids.map { stream.push($0) }.joined() + stream.flush()
    #expect(streamed == tokenizer.decode(ids))
  }

  @Test func encodingThirtyKilobytesTakesMilliseconds() throws {
    guard let tokenizer = try loadRealTokenizer() else { return }
    let fixture = try RealTokenizerFixture.load()
    var text = ""
    while text.utf8.count < 30_000 { text += fixture.cases.map(\.text).joined(separator: " ") }
    let clock = ContinuousClock()
    var ids: [Int32] = []
    let elapsed = clock.measure { ids = tokenizer.encode(text, addSpecial: false) }
    #expect(!ids.isEmpty)
    // Milliseconds in release; the bound leaves room for debug builds and a busy machine.
    #expect(elapsed < .seconds(2), "encoding \(text.utf8.count) bytes took \(elapsed)")
  }
}
