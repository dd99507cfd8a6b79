import ArgumentParser
import Foundation
import Model

/// Where the model is and how many threads compute: shared by every command that runs it.
struct ModelOptions: ParsableArguments {
  @Option(
    name: .long,
    help:
      "Path of the base model (GGUF). Default: $LORAD_MODEL, else models/\(ModelOptions.defaultName) here or next to the lorad binary."
  )
  var model: String?

  @Option(name: .long, help: "Compute threads (the calling thread included).")
  var threads: Int = 2

  @Option(name: .long, help: "Context size in tokens (prompt plus completion).")
  var ctx: Int = 2048

  static let defaultName = "SmolLM2-135M-Instruct.Q4_1.gguf"

  func validate() throws {
    guard (1...256).contains(threads) else { throw ValidationError("--threads must be between 1 and 256") }
    guard (16...131072).contains(ctx) else { throw ValidationError("--ctx must be between 16 and 131072") }
  }

  /// The model path: the flag, $LORAD_MODEL, ./models/…, or models/… beside the binary's package.
  func resolvedModelPath() throws -> String {
    if let model { return model }
    if let env = ProcessInfo.processInfo.environment["LORAD_MODEL"], !env.isEmpty { return env }
    let fm = FileManager.default
    var candidates = ["models/" + Self.defaultName]
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<4 {
      candidates.append(dir.appendingPathComponent("models/" + Self.defaultName).path)
      dir = dir.deletingLastPathComponent()
    }
    for c in candidates where fm.fileExists(atPath: c) { return c }
    throw ValidationError(
      "no model found: pass --model PATH, set LORAD_MODEL, or run `make model` to fetch models/\(Self.defaultName)")
  }

  /// Loads the model file, its tokenizer and chat template.
  func load() throws -> LoadedModel {
    try LoadedModel(path: try resolvedModelPath())
  }
}

/// How tokens are chosen; `--seed` everywhere randomness enters.
struct SamplingFlags: ParsableArguments {
  @Option(name: .long, help: "Sampling temperature; 0 is greedy (argmax).")
  var temperature: Float = 0.8
  @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = all).")
  var topK: Int = 40
  @Option(name: .customLong("top-p"), help: "Nucleus sampling: keep tokens up to this total probability.")
  var topP: Float = 0.95
  @Option(name: .customLong("min-p"), help: "Drop tokens below this share of the top probability.")
  var minP: Float = 0.05
  @Option(name: .customLong("repeat-penalty"), help: "Penalty for tokens of the last --repeat-last-n (1 = off).")
  var repeatPenalty: Float = 1.0
  @Option(name: .customLong("repeat-last-n"), help: "How many recent tokens the repeat penalty looks at.")
  var repeatLastN: Int = 64
  @Option(name: .long, help: "Random seed for sampling.")
  var seed: UInt64 = 0

  var options: SamplingOptions {
    var o = SamplingOptions()
    o.temperature = temperature
    o.topK = topK
    o.topP = topP
    o.minP = minP
    o.repeatPenalty = repeatPenalty
    o.repeatLastN = repeatLastN
    o.seed = seed
    return o
  }

  func validate() throws {
    do { try options.validate() } catch { throw ValidationError("\(error)") }
  }
}

/// Writes to standard error.
func printError(_ s: String) {
  FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

/// What the KV cache stores: for the commands that run the forward over a context.
struct KVOptions: ParsableArguments {
  @Option(
    name: .customLong("kv-type"),
    help:
      "What the KV cache stores: f32 (exact, the default) or f16 (half the memory and half the attention's reads, as llama.cpp's default; decode at long contexts gets faster)."
  )
  var kvType: KVType = .f32
}

extension KVType: ExpressibleByArgument {}
