import Foundation
import Model

extension BenchCommand {
  /// The training benchmark: `sequences` random sequences of `promptTokens` + `completionTokens`
  /// tokens, a random rank-R adapter on all seven projections (B non-zero); times log π of all of
  /// them (forward only, as the reference log-probs need) and log π plus its gradient (one
  /// learner update's worth of backward), `repetitions` times each.
  func runTrainBench(
    _ m: LoadedModel, sequences S: Int, promptTokens: Int, completionTokens: Int, rank: Int, passTokens: Int
  ) throws {
    let c = m.model.config
    let layout = try LoRALayout(config: c, rank: rank, alpha: Float(2 * rank))
    let params = LoRAParameters(layout: layout, seed: seed, bScale: 0.01)
    let T = promptTokens + completionTokens
    let ctx = LoRATrainingContext(
      model: m.model, rank: rank, maxTokens: max(passTokens, T - 1), maxSequence: T - 1,
      threads: modelOptions.threads)
    var rng = Xoshiro256(seed: seed)
    let seqs = (0..<S).map { i in
      TrainingSequence(
        tokens: (0..<T).map { _ in Int32(truncatingIfNeeded: rng.next() % UInt64(c.vocabSize)) },
        promptLength: promptTokens, weight: i % 2 == 0 ? 1 : -1)
    }
    var grads = LoRAGradients(layout: layout)
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    // CPU seconds of the whole process (user + system): the work done, whatever else runs.
    func cpu() -> Double {
      var u = rusage()
      getrusage(RUSAGE_SELF.rawValue, &u)
      return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }
    _ = try ctx.logProbs([seqs[0]], adapter: params)  // warm-up: touches every weight page
    var fwd: [Double] = []
    var both: [Double] = []
    var bothCPU: [Double] = []
    for _ in 0..<repetitions {
      let t0 = now()
      _ = try ctx.logProbs(seqs, adapter: params)
      fwd.append(now() - t0)
      grads.zero()
      let t1 = now(), c1 = cpu()
      try ctx.accumulateGradient(seqs, adapter: params, into: &grads)
      both.append(now() - t1)
      bothCPU.append(cpu() - c1)
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
          "train: %d sequences of %d+%d tokens, rank %d on all seven projections, %d rows per pass, threads %d: log π %.2f ± %.2f s, log π + gradient %.2f ± %.2f s (%.0f tokens/s, %.2f CPU s); gradient norm %.3g; context %.0f MB, peak RSS %.0f MB",
        S, promptTokens, completionTokens, rank, ctx.maxTokens, modelOptions.threads, mean(fwd), sd(fwd), mean(both),
        sd(both), Double(S * T) / mean(both), mean(bothCPU), grads.norm, Double(ctx.bytes) / 1e6, rss))
    let json: [String: Any] = [
      "train_sequences": S, "prompt_tokens": promptTokens, "completion_tokens": completionTokens, "rank": rank,
      "pass_tokens": ctx.maxTokens, "threads": modelOptions.threads,
      "logprob_s": (mean(fwd) * 1000).rounded() / 1000, "logprob_gradient_s": (mean(both) * 1000).rounded() / 1000,
      "logprob_gradient_cpu_s": (mean(bothCPU) * 1000).rounded() / 1000,
      "context_mb": (Double(ctx.bytes) / 1e6).rounded(), "peak_rss_mb": rss.rounded(), "isa": isaName(),
    ]
    let d = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    print(String(data: d, encoding: .utf8)!)
  }
}
