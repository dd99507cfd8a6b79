import ArgumentParser
import Foundation
import Model
import Tensor

struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Measure prefill and decode speed the way llama-bench does (pp / tg).",
    discussion: """
      Prefill: one batch of --prompt-tokens random tokens into an empty cache. Decode:
      --gen-tokens single-token steps (greedy). Each is repeated --repetitions times; the mean is
      reported. The last line is one JSON object with prefill_tokens_per_s, decode_tokens_per_s
      and peak_rss_mb.
      """)

  @OptionGroup var modelOptions: ModelOptions
  @Option(name: .customLong("prompt-tokens"), help: "Tokens in the prefill test (pp).")
  var promptTokens: Int = 512
  @Option(name: .customLong("gen-tokens"), help: "Tokens in the decode test (tg).")
  var genTokens: Int = 128
  @Option(name: .long, help: "Repetitions of each test.")
  var repetitions: Int = 3
  @Option(name: .long, help: "Batched products: int8 (our GEMM) or blas (OpenBLAS sgemm on dequantized weights).")
  var batched: String = "int8"
  @Option(name: .long, help: "Seed of the random prompt.")
  var seed: UInt64 = 42

  func validate() throws {
    guard promptTokens >= 1, genTokens >= 1, repetitions >= 1 else {
      throw ValidationError("--prompt-tokens, --gen-tokens and --repetitions must be positive")
    }
    guard BatchedProduct(rawValue: batched) != nil else { throw ValidationError("--batched must be int8 or blas") }
  }

  func run() throws {
    let m = try modelOptions.load()
    let need = promptTokens + genTokens + 1
    let ctx = LlamaContext(
      model: m.model, threads: modelOptions.threads, maxBatch: promptTokens,
      maxContext: max(need, 16), batched: BatchedProduct(rawValue: batched)!, maxLogitRows: 1)
    let cache = ctx.makeCache()
    let batch = Batch(capacity: promptTokens)
    var rng = Xoshiro256(seed: seed)
    let vocab = UInt64(m.model.config.vocabSize)
    let prompt = (0..<promptTokens).map { _ in Int32(truncatingIfNeeded: rng.next() % vocab) }

    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    // Warm-up: touches every weight page and wakes the threads.
    batch.clear()
    batch.add(prompt[0], position: 0, cache: cache, logits: true)
    ctx.forward(batch)

    var pp: [Double] = []
    var tg: [Double] = []
    for _ in 0..<repetitions {
      cache.truncate(to: 0)
      batch.clear()
      for (i, t) in prompt.enumerated() { batch.add(t, position: i, cache: cache, logits: i == prompt.count - 1) }
      let t0 = now()
      ctx.forward(batch)
      pp.append(Double(promptTokens) / (now() - t0))

      // Decode from a one-token context, as llama-bench's tg does.
      cache.truncate(to: 0)
      var tok = prompt[0]
      let t1 = now()
      for i in 0..<genTokens {
        batch.clear()
        batch.add(tok, position: i, cache: cache, logits: true)
        ctx.forward(batch)
        tok = Sampler.argmax(ctx.logits(row: 0), m.model.config.vocabSize)
      }
      tg.append(Double(genTokens) / (now() - t1))
    }
    func mean(_ a: [Double]) -> Double { a.reduce(0, +) / Double(a.count) }
    func sd(_ a: [Double]) -> Double {
      let mu = mean(a)
      return a.count > 1 ? (a.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(a.count - 1)).squareRoot() : 0
    }
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    let rss = Double(ru.ru_maxrss) / 1024
    printError(
      String(
        format: "pp%d: %.1f ± %.1f t/s   tg%d: %.1f ± %.1f t/s   threads %d   batched %@   peak RSS %.0f MB",
        promptTokens, mean(pp), sd(pp), genTokens, mean(tg), sd(tg), modelOptions.threads, batched, rss))
    let json: [String: Any] = [
      "model": URL(fileURLWithPath: try modelOptions.resolvedModelPath()).lastPathComponent,
      "threads": modelOptions.threads, "prompt_tokens": promptTokens, "gen_tokens": genTokens,
      "prefill_tokens_per_s": (mean(pp) * 10).rounded() / 10, "decode_tokens_per_s": (mean(tg) * 10).rounded() / 10,
      "peak_rss_mb": rss.rounded(), "batched": batched, "isa": isaName(),
    ]
    let d = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    print(String(data: d, encoding: .utf8)!)
  }
}

func isaName() -> String {
  switch CPUFeatures.isa {
  case 2: return "avx512"
  case 1: return "avx2"
  default: return "scalar"
  }
}
