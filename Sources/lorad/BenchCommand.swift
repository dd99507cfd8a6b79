import Adapters
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
  @OptionGroup var kvOptions: KVOptions
  @OptionGroup var adapterOptions: AdapterOptions
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
  @Option(name: .long, help: "Sequences decoded together in one batch (prefill splits --prompt-tokens among them).")
  var sequences: Int = 1
  @Option(
    name: .customLong("distinct-adapters"), help: "Random LoRA adapters spread over the sequences (0 = base only).")
  var distinctAdapters: Int = 0
  @Option(name: .long, help: "Rank of the random adapters (all seven projections).")
  var rank: Int = 16
  @Flag(
    name: .customLong("against-base"),
    help:
      "With adapters: also run every repetition without them, alternating in the same process, and report the ratios (adapters / base); robust on a shared, noisy machine."
  )
  var againstBase = false
  @Option(
    name: .customLong("registry"),
    help: "Instead: the registry benchmark with this many adapters on disk (cold load to first token, resident memory)."
  )
  var registryCount: Int = 0
  @Option(name: .customLong("registry-budget"), help: "Registry benchmark: memory budget, in adapters.")
  var registryBudget: Int = 10
  @Flag(
    name: .long,
    help:
      "Instead: the training benchmark (log π and its LoRA gradient for --train-sequences random sequences on the real model)."
  )
  var train = false
  @Option(name: .customLong("train-sequences"), help: "Training benchmark: sequences per update.")
  var trainSequences: Int = 16
  @Option(name: .customLong("train-prompt"), help: "Training benchmark: prompt tokens per sequence.")
  var trainPrompt: Int = 32
  @Option(name: .customLong("train-completion"), help: "Training benchmark: completion tokens per sequence.")
  var trainCompletion: Int = 64
  @Option(name: .customLong("train-rank"), help: "Training benchmark: LoRA rank (all seven projections).")
  var trainRank: Int = 8
  @Option(name: .customLong("train-pass-tokens"), help: "Training benchmark: rows of one forward/backward pass.")
  var trainPassTokens: Int = 384

  func validate() throws {
    guard promptTokens >= 1, genTokens >= 1, repetitions >= 1 else {
      throw ValidationError("--prompt-tokens, --gen-tokens and --repetitions must be positive")
    }
    guard BatchedProduct(rawValue: batched) != nil else { throw ValidationError("--batched must be int8 or blas") }
    guard (1...512).contains(sequences), promptTokens >= sequences else {
      throw ValidationError("--sequences must be in 1...512 and at most --prompt-tokens")
    }
    guard trainSequences >= 1, trainPrompt >= 1, trainCompletion >= 1, (1...256).contains(trainRank),
      trainPassTokens >= 1
    else {
      throw ValidationError(
        "--train-sequences, --train-prompt, --train-completion, --train-rank and --train-pass-tokens must be positive")
    }
    guard distinctAdapters >= 0, distinctAdapters <= sequences, (1...256).contains(rank) else {
      throw ValidationError("--distinct-adapters must be in 0...--sequences and --rank in 1...256")
    }
  }

  func run() throws {
    let m = try modelOptions.load()
    if train {
      try runTrainBench(
        m, sequences: trainSequences, promptTokens: trainPrompt, completionTokens: trainCompletion, rank: trainRank,
        passTokens: trainPassTokens)
      return
    }
    if registryCount > 0 {
      try runRegistryBench(m, count: registryCount, budgetOf: registryBudget)
      return
    }
    let c = m.model.config
    let S = sequences
    let perSeq = promptTokens / S
    let need = perSeq + genTokens + 1
    let ctx = LlamaContext(
      model: m.model, threads: modelOptions.threads, maxBatch: max(promptTokens, S),
      maxContext: max(need, 16), batched: BatchedProduct(rawValue: batched)!, maxLogitRows: S,
      kvType: kvOptions.kvType)
    let caches = (0..<S).map { _ in ctx.makeCache() }
    let adapters = (0..<distinctAdapters).map {
      ResidentAdapter(
        LoRAWeights.random(name: "bench\($0)", config: c, rank: rank, alpha: Float(2 * rank), seed: seed + UInt64($0)),
        layers: c.layers, type: adapterOptions.residentType)
    }
    // --adapter applies to every sequence; --distinct-adapters spreads random ones over them.
    let (given, leases) = try adapterOptions.resolve(config: c)
    defer { leases.forEach { $0.release() } }
    let mixes: [AdapterMix?] = (0..<S).map { adapters.isEmpty ? given : AdapterMix(adapters[$0 % adapters.count]) }
    let batch = Batch(capacity: max(promptTokens, S))
    var rng = Xoshiro256(seed: seed)
    let vocab = UInt64(c.vocabSize)
    let prompt = (0..<(perSeq * S)).map { _ in Int32(truncatingIfNeeded: rng.next() % vocab) }

    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    // Warm-up: touches every weight page and wakes the threads.
    batch.clear()
    for s in 0..<S { batch.add(prompt[s * perSeq], position: 0, cache: caches[s], logits: true, adapters: mixes[s]) }
    ctx.forward(batch)

    // One repetition: prefill, then decode, each sequence with its mix (or none).
    func once(_ mixes: [AdapterMix?]) -> (pp: Double, tg: Double) {
      // Prefill: one batch holding every sequence's prompt, each with its adapter.
      batch.clear()
      for s in 0..<S {
        caches[s].truncate(to: 0)
        for i in 0..<perSeq {
          batch.add(prompt[s * perSeq + i], position: i, cache: caches[s], logits: i == perSeq - 1, adapters: mixes[s])
        }
      }
      let t0 = now()
      ctx.forward(batch)
      let pp = Double(perSeq * S) / (now() - t0)

      // Decode from a one-token context, as llama-bench's tg does: S rows per step.
      var toks = (0..<S).map { prompt[$0 * perSeq] }
      for cache in caches { cache.truncate(to: 0) }
      let t1 = now()
      for i in 0..<genTokens {
        batch.clear()
        for s in 0..<S { batch.add(toks[s], position: i, cache: caches[s], logits: true, adapters: mixes[s]) }
        ctx.forward(batch)
        for s in 0..<S { toks[s] = Sampler.argmax(ctx.logits(row: s), c.vocabSize) }
      }
      return (pp, Double(genTokens * S) / (now() - t1))
    }
    let compare = againstBase && mixes.contains { $0 != nil }
    let none = [AdapterMix?](repeating: nil, count: S)
    var pp: [Double] = [], tg: [Double] = []
    var ppBase: [Double] = [], tgBase: [Double] = []
    for r in 0..<repetitions {
      // Alternate which goes first, so a drift in machine speed does not favour either.
      if compare && r % 2 == 1 {
        let b = once(none)
        ppBase.append(b.pp)
        tgBase.append(b.tg)
      }
      let a = once(mixes)
      pp.append(a.pp)
      tg.append(a.tg)
      if compare && r % 2 == 0 {
        let b = once(none)
        ppBase.append(b.pp)
        tgBase.append(b.tg)
      }
    }
    func median(_ a: [Double]) -> Double {
      let s = a.sorted()
      return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
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
        format:
          "pp%d: %.1f ± %.1f t/s   tg%d: %.1f ± %.1f t/s   threads %d   sequences %d   adapters %d (rank %d)   batched %@   peak RSS %.0f MB",
        promptTokens, mean(pp), sd(pp), genTokens, mean(tg), sd(tg), modelOptions.threads, S, distinctAdapters, rank,
        batched, rss))
    var json: [String: Any] = [
      "model": URL(fileURLWithPath: try modelOptions.resolvedModelPath()).lastPathComponent,
      "threads": modelOptions.threads, "prompt_tokens": promptTokens, "gen_tokens": genTokens,
      "sequences": S, "distinct_adapters": distinctAdapters, "rank": rank,
      "adapter_bytes": adapters.reduce(0) { $0 + $1.bytes },
      "prefill_tokens_per_s": (mean(pp) * 10).rounded() / 10, "decode_tokens_per_s": (mean(tg) * 10).rounded() / 10,
      "peak_rss_mb": rss.rounded(), "batched": batched, "isa": isaName(),
      "adapter_type": adapterOptions.adapterType,
    ]
    if compare {
      // Ratios of each repetition with its base neighbour, then the median.
      let tgRatio = median(zip(tg, tgBase).map { $0 / $1 }), ppRatio = median(zip(pp, ppBase).map { $0 / $1 })
      json["base_decode_tokens_per_s"] = (mean(tgBase) * 10).rounded() / 10
      json["base_prefill_tokens_per_s"] = (mean(ppBase) * 10).rounded() / 10
      json["decode_ratio"] = (tgRatio * 1000).rounded() / 1000
      json["prefill_ratio"] = (ppRatio * 1000).rounded() / 1000
      printError(
        String(
          format: "against the base, same process, alternating: tg %.1f vs %.1f t/s (median ratio %.3f), pp ratio %.3f",
          mean(tg), mean(tgBase), tgRatio, ppRatio))
    }
    let d = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    print(String(data: d, encoding: .utf8)!)
  }
}

func isaName() -> String {
  switch CPUFeatures.isa {
  case 3: return "amx"
  case 2: return "avx512"
  case 1: return "avx2"
  default: return "scalar"
  }
}
