import Adapters
import Foundation
import Model

extension BenchCommand {
  /// The registry benchmark: `count` random rank-R adapters on all seven projections written
  /// as PEFT (F16 safetensors) to a temporary directory, served under a budget of `budgetOf`
  /// adapters; each in turn is loaded cold (evicting the least recently used) and runs an
  /// 8-token prompt to its first token. Reports cold load → first token times and the most
  /// resident memory against the files' sizes.
  func runRegistryBench(_ m: LoadedModel, count: Int, budgetOf: Int) throws {
    let c = m.model.config
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorad-bench-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    printError("writing \(count) rank-\(rank) adapters (all seven projections, F16) to \(dir.path) ...")
    var fileBytes = 0
    for i in 0..<count {
      let w = LoRAWeights.random(name: "a\(i)", config: c, rank: rank, alpha: Float(2 * rank), seed: seed + UInt64(i))
      let path = dir.appendingPathComponent("a\(i)").path
      try PEFTAdapter.write(w, to: path, dtype: .f16)
      for f in [PEFTAdapter.configFile, PEFTAdapter.weightsFile] {
        let a = try FileManager.default.attributesOfItem(atPath: path + "/" + f)
        fileBytes += (a[.size] as? Int) ?? 0
      }
    }
    let oneResident = ResidentAdapter(
      LoRAWeights.random(name: "probe", config: c, rank: rank, alpha: Float(2 * rank), seed: seed), layers: c.layers
    ).bytes
    let budget = oneResident * budgetOf
    let registry = try AdapterRegistry(directory: dir.path, config: c, memoryBudget: budget)
    let ctx = LlamaContext(model: m.model, threads: modelOptions.threads, maxBatch: 8, maxContext: 64, maxLogitRows: 1)
    let cache = ctx.makeCache()
    let batch = Batch(capacity: 8)
    let prompt: [Int32] = [504, 3575, 282, 4649, 314, 253, 1837, 30]
    var times: [Double] = []
    var acquireTimes: [Double] = []
    var peakResident = 0
    let rss0 = residentSetMB()
    for i in 0..<count {
      let t0 = DispatchTime.now().uptimeNanoseconds
      let lease = try registry.acquire("a\(i)")
      acquireTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
      cache.truncate(to: 0)
      batch.clear()
      for (p, t) in prompt.enumerated() {
        batch.add(t, position: p, cache: cache, logits: p == prompt.count - 1, adapters: AdapterMix(lease.adapter))
      }
      ctx.forward(batch)
      _ = Sampler.argmax(ctx.logits(row: 0), c.vocabSize)
      times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
      peakResident = max(peakResident, registry.residentBytes)
      lease.release()
    }
    let sorted = times.sorted()
    let p50 = sorted[sorted.count / 2], p95 = sorted[min(sorted.count - 1, sorted.count * 95 / 100)]
    printError(
      String(
        format:
          "%d adapters, budget %d (%@): load p50 %.1f ms; cold load to first token p50 %.1f ms, p95 %.1f ms, max %.1f ms; resident peak %@ vs %@ of files; RSS +%.0f MB",
        count, budgetOf, MemorySize.format(budget), acquireTimes.sorted()[count / 2], p50, p95, sorted.last!,
        MemorySize.format(peakResident),
        MemorySize.format(fileBytes), residentSetMB() - rss0))
    let json: [String: Any] = [
      "adapters": count, "budget_adapters": budgetOf, "budget_bytes": budget, "rank": rank,
      "cold_load_first_token_ms_p50": (p50 * 10).rounded() / 10,
      "cold_load_first_token_ms_p95": (p95 * 10).rounded() / 10,
      "cold_load_first_token_ms_max": (sorted.last! * 10).rounded() / 10, "resident_bytes_peak": peakResident,
      "file_bytes_total": fileBytes, "resident_bytes_per_adapter": oneResident,
      "load_ms_p50": (acquireTimes.sorted()[count / 2] * 10).rounded() / 10, "loads": registry.stats.loads,
      "evictions": registry.stats.evictions,
    ]
    let d = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    print(String(data: d, encoding: .utf8)!)
  }
}

/// Current resident set size of this process in MB (from /proc/self/statm).
func residentSetMB() -> Double {
  guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
  let f = s.split(separator: " ")
  guard f.count > 1, let pages = Double(f[1]) else { return 0 }
  return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
}
