import ArgumentParser
import Foundation
import Server

/// `lorad loadtest`: many concurrent streaming clients against a running daemon.
struct LoadtestCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "loadtest",
    abstract: "Drive a running lorad daemon with concurrent streaming clients and report throughput and latency.",
    discussion: """
      N clients (threads, one connection each) send K generate requests each, one after another, \
      streaming. Request g (numbered across clients, g = client + N × round) uses adapter \
      P(g mod M) — so with M = N every client keeps one adapter and every step mixes M — or the \
      base model when M = 0; its prompt is line g of the prompt set (cycled). Reported: \
      completion tokens per second over the wall time, time to first token and the gap between \
      token events (p50/p99), errors by code. bench/llama-server reports the same figures for \
      llama.cpp's server. Example: lorad loadtest --clients 16 --adapters 16 --requests 4
      """)

  @OptionGroup var connection: ConnectOptions
  @Option(name: .long, help: "Concurrent clients.")
  var clients: Int = 16
  @Option(name: .long, help: "Distinct adapters, named PREFIX0 … PREFIX(M-1); 0: the base model.")
  var adapters: Int = 0
  @Option(name: .long, help: "Requests per client.")
  var requests: Int = 4
  @Option(name: .customLong("max-tokens"), help: "Tokens to generate per request.")
  var maxTokens: Int = 64
  @Option(name: .customLong("prompt-set"), help: "A file of prompts, one per line. Default: a built-in set of 8.")
  var promptSet: String?
  @Option(name: .customLong("adapter-prefix"), help: "Adapter names are PREFIX0, PREFIX1, …")
  var adapterPrefix: String = "a"
  @Option(name: .long, help: "Sampling temperature (top-k 40, top-p 0.95; bench/llama-server uses the same).")
  var temperature: Double = 0.8
  @Option(name: .long, help: "Seed of request g is SEED + g.")
  var seed: UInt64 = 0
  @Flag(name: .long, help: "Print one JSON object instead of the table.")
  var json = false

  static let builtinPrompts = [
    "The history of the printing press begins",
    "Write a short note to a colleague about the meeting tomorrow.",
    "A recipe for a simple tomato soup:",
    "The three most important things to know about photosynthesis are",
    "Once upon a time, in a small village by the sea,",
    "Explain to a child why the sky is blue.",
    "def fibonacci(n):",
    "The main differences between a list and a tuple in Python are",
  ]

  func validate() throws {
    guard (1...4096).contains(clients) else { throw ValidationError("--clients must be between 1 and 4096") }
    guard adapters >= 0 else { throw ValidationError("--adapters must be 0 or more") }
    guard requests >= 1 else { throw ValidationError("--requests must be at least 1") }
    guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1") }
  }

  func prompts() throws -> [String] {
    guard let promptSet else { return Self.builtinPrompts }
    guard let text = try? String(contentsOfFile: promptSet, encoding: .utf8) else {
      throw ValidationError("--prompt-set \(promptSet): cannot read the file")
    }
    let lines = text.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
    guard !lines.isEmpty else { throw ValidationError("--prompt-set \(promptSet): no non-empty lines") }
    return lines
  }

  func run() throws {
    let prompts = try prompts()
    let results = LoadResults()
    let ready = DispatchGroup()
    let done = DispatchGroup()
    let go = DispatchSemaphore(value: 0)
    for c in 0..<clients {
      ready.enter()
      done.enter()
      let thread = Thread { [self] in
        let client = LoadClient(index: c, command: self, prompts: prompts)
        client.connect()
        ready.leave()
        go.wait()
        client.run()
        results.add(client.results)
        done.leave()
      }
      thread.stackSize = 1 << 20
      thread.start()
    }
    ready.wait()
    let start = DispatchTime.now()
    for _ in 0..<clients { go.signal() }
    done.wait()
    let wall = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    let report = LoadReport(results.all, wall: wall)
    if json {
      print(JSONWriter.string(.object(report.json(setup: setup))))
    } else {
      print(report.table(setup: setup))
    }
  }

  var setup: JSONObject {
    [
      "target": .string(connection.address), "clients": .integer(Int64(clients)),
      "adapters": .integer(Int64(adapters)), "requests_per_client": .integer(Int64(requests)),
      "max_tokens": .integer(Int64(maxTokens)),
    ]
  }
}

/// One client thread's connection and measurements.
final class LoadClient {
  let index: Int
  let command: LoadtestCommand
  let prompts: [String]
  var connection: LineClient?
  var connectError: String?
  var results: [RequestResult] = []

  init(index: Int, command: LoadtestCommand, prompts: [String]) {
    self.index = index
    self.command = command
    self.prompts = prompts
  }

  func connect() {
    do {
      let c = try LineClient(connect: command.connection.address, timeoutSeconds: 600)
      if let key = command.connection.key {
        try c.send(["op": .string("auth"), "id": .string("auth"), "key": .string(key)])
        guard let r = try c.readReply(), r.string("event") == "ok" else {
          connectError = "unauthorized"
          return
        }
      }
      connection = c
    } catch {
      connectError = "connect"
    }
  }

  func run() {
    for round in 0..<command.requests {
      let g = index + command.clients * round
      guard let c = connection else {
        results.append(RequestResult(error: connectError ?? "connect"))
        continue
      }
      var r: JSONObject = [
        "op": .string("generate"), "id": .string("g\(g)"), "prompt": .string(prompts[g % prompts.count]),
        "max_tokens": .integer(Int64(command.maxTokens)), "temperature": .double(command.temperature),
        "top_k": .integer(40), "top_p": .double(0.95), "seed": .integer(Int64(clamping: command.seed &+ UInt64(g))),
        "stream": .bool(true),
      ]
      if command.adapters > 0 { r["adapter"] = .string(command.adapterPrefix + String(g % command.adapters)) }
      let result = measure(c, r)
      results.append(result)
      if result.error == "connection" { connection = nil }
    }
  }

  private func measure(_ c: LineClient, _ request: JSONObject) -> RequestResult {
    var result = RequestResult()
    let sent = DispatchTime.now().uptimeNanoseconds
    var last = sent
    do {
      try c.send(request)
      while let reply = try c.readReply() {
        guard reply["id"] == request["id"] || reply["id"] == .null else { continue }
        let now = DispatchTime.now().uptimeNanoseconds
        switch reply.string("event") {
        case "token":
          if result.firstToken == nil {
            result.firstToken = Double(now - sent) / 1e9
          } else {
            result.gaps.append(Double(now - last) / 1e9)
          }
          last = now
        case "done":
          if result.firstToken == nil { result.firstToken = Double(now - sent) / 1e9 }
          if case .object(let usage)? = reply["usage"] { result.completionTokens = usage.int("completion_tokens") ?? 0 }
          result.seconds = Double(now - sent) / 1e9
          return result
        case "error":
          result.error = reply.string("code") ?? "error"
          return result
        default: continue
        }
      }
    } catch {}
    result.error = "connection"
    return result
  }
}

/// What one request measured.
struct RequestResult {
  var error: String?
  /// Seconds from sending to the first token event.
  var firstToken: Double?
  /// Seconds between consecutive token events.
  var gaps: [Double] = []
  var completionTokens = 0
  var seconds = 0.0

  init(error: String? = nil) { self.error = error }
}

/// Results gathered from the client threads.
final class LoadResults: @unchecked Sendable {  // guarded by lock
  private let lock = NSLock()
  private var results: [RequestResult] = []
  func add(_ r: [RequestResult]) { lock.withLock { results += r } }
  var all: [RequestResult] { lock.withLock { results } }
}
