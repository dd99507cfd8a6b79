import ArgumentParser
import Foundation
import Server

/// `lorad ask`: one generation from a running daemon, streamed to stdout.
struct AskCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ask",
    abstract: "Ask a running lorad daemon for one generation and stream it to stdout.",
    discussion: """
      The text appears as the daemon generates it; at the end the request id (r-…) is printed \
      on stderr: rate the answer with `lorad feedback r-… up|down`. The prompt is a user \
      message and the model's chat template is applied (--messages, the default), or with --raw \
      it is sent as is. Sampling flags left out get the daemon's defaults. An error from the \
      daemon prints `error (code): message` and exits 1.
      Example: lorad ask --adapter support --max-tokens 64 "Where is my parcel?"
      """)

  enum Mode: String, EnumerableFlag {
    case messages, raw
    static func help(for value: Mode) -> ArgumentHelp? {
      switch value {
      case .messages: return "Send the prompt as a user message; the chat template is applied (default)."
      case .raw: return "Send the prompt as raw text, without the chat template."
      }
    }
  }

  @Argument(help: "The prompt.")
  var prompt: String

  @Option(
    name: .long,
    help: ArgumentHelp(
      "Adapter: NAME (its current version) or NAME@N, optionally :SCALE; repeat for a weighted mix. None: the base model.",
      valueName: "adapter"))
  var adapter: [String] = []

  @Flag var mode: Mode = .messages

  @Option(name: .long, help: "A system message before the prompt (with --messages).")
  var system: String?

  @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.")
  var maxTokens: Int?
  @Option(name: .long, help: "Sampling temperature; 0 is greedy.")
  var temperature: Double?
  @Option(name: .customLong("top-p"), help: "Nucleus sampling: keep tokens up to this total probability.")
  var topP: Double?
  @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = all).")
  var topK: Int?
  @Option(name: .long, help: "Random seed for sampling.")
  var seed: UInt64?
  @Option(name: .long, help: "Stop when this text is generated (repeatable).")
  var stop: [String] = []

  @OptionGroup var connection: ConnectOptions

  func validate() throws {
    if system != nil && mode == .raw { throw ValidationError("--system needs --messages (it is a chat turn)") }
    for a in adapter { _ = try Self.selection(a) }
  }

  /// `NAME[@N][:SCALE]` → (NAME[@N], SCALE?).
  static func selection(_ spec: String) throws -> (name: String, scale: Double?) {
    guard let colon = spec.lastIndex(of: ":") else { return (spec, nil) }
    guard let scale = Double(spec[spec.index(after: colon)...]), scale.isFinite else {
      throw ValidationError("--adapter \(spec): the scale after ':' must be a number, as in support:0.5")
    }
    return (String(spec[..<colon]), scale)
  }

  /// The generate request line.
  func request(id: String) throws -> JSONObject {
    var r: JSONObject = ["op": .string("generate"), "id": .string(id)]
    switch mode {
    case .raw: r["prompt"] = .string(prompt)
    case .messages:
      var turns: [JSONValue] = []
      if let system { turns.append(.object(["role": .string("system"), "content": .string(system)])) }
      turns.append(.object(["role": .string("user"), "content": .string(prompt)]))
      r["messages"] = .array(turns)
    }
    let sel = try adapter.map(Self.selection)
    if sel.count == 1 && sel[0].scale == nil {
      r["adapter"] = .string(sel[0].name)
    } else if !sel.isEmpty {
      r["adapters"] = .array(
        sel.map { s in .object(["name": .string(s.name), "scale": .double(s.scale ?? 1)]) })
    }
    if let maxTokens { r["max_tokens"] = .integer(Int64(maxTokens)) }
    if let temperature { r["temperature"] = .double(temperature) }
    if let topP { r["top_p"] = .double(topP) }
    if let topK { r["top_k"] = .integer(Int64(topK)) }
    if let seed { r["seed"] = .integer(Int64(clamping: seed)) }
    if !stop.isEmpty { r["stop"] = .array(stop.map { .string($0) }) }
    r["stream"] = .bool(true)
    return r
  }

  func run() throws {
    let client = try connection.open()
    let id = "ask"
    try client.sendOrExit(try request(id: id))
    let out = FileHandle.standardOutput
    var streamed = false
    var endsInNewline = true
    while let reply = try client.readOrExit() {
      guard reply["id"] == .string(id) || reply["id"] == .null else { continue }
      try client.exitOnError(reply)
      switch reply.string("event") {
      case "token":
        let text = reply.string("text") ?? ""
        out.write(Data(text.utf8))
        streamed = true
        if !text.isEmpty { endsInNewline = text.hasSuffix("\n") }
      case "done":
        if !streamed, let text = reply.string("text") {
          out.write(Data(text.utf8))
          endsInNewline = text.isEmpty || text.hasSuffix("\n")
        }
        if !endsInNewline { out.write(Data("\n".utf8)) }
        printError(reply.string("request") ?? "(the daemon gave no request id)")
        return
      default: continue  // start, and events a newer daemon may add
      }
    }
    printError("error: \(client.address) closed the connection before the generation was done")
    throw ExitCode.failure
  }
}
