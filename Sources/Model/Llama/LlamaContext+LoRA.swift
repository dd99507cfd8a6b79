import CKernels
import Tensor

/// One low-rank product of a step: rows [row, row + count) of the batch, one adapter part,
/// one module. `t` is where its (count, rank) intermediate A·x lives in the scratch.
struct LoRATask {
  var row: Int
  var count: Int
  var factor: LowRankFactor
  var scale: Float
  var slot: Int  // which of the (up to 3) outputs of the call
  var t: Int  // offset of (count, rank) floats in loraT
}

/// Up to three outputs (module, y, ldy) of one LoRA call, without an array.
struct LoRAOutputs {
  var o0: (LoRAModule, UnsafeMutablePointer<Float>, Int)
  var o1: (LoRAModule, UnsafeMutablePointer<Float>, Int)?
  var o2: (LoRAModule, UnsafeMutablePointer<Float>, Int)?
  subscript(s: Int) -> (LoRAModule, UnsafeMutablePointer<Float>, Int)? { s == 0 ? o0 : s == 1 ? o1 : o2 }
}

/// A maximal run of consecutive batch rows that apply the same adapter mix.
struct LoRARun {
  var row: Int
  var count: Int
  var mix: AdapterMix
}

extension LlamaContext {
  /// Groups the batch's rows into runs of one adapter mix (rows without adapters are skipped).
  func collectLoRARuns(_ batch: Batch, _ n: Int) {
    loraRuns.removeAll(keepingCapacity: true)
    var i = 0
    while i < n {
      guard let mix = batch.adapters[i] else {
        i += 1
        continue
      }
      var j = i + 1
      while j < n, let m = batch.adapters[j], m === mix { j += 1 }
      loraRuns.append(LoRARun(row: i, count: j - i, mix: mix))
      i = j
    }
  }

  /// y_s[rows of each run] += user scale · factor scale · B·(A·x) for every adapter part of the
  /// run and every output s of this call (q, k, v share x; gate, up share x). Base rows without
  /// adapters are untouched. Two ways to share the work, with the same arithmetic per row:
  /// - many (run, output) groups (decode with several adapters) or only short runs: one pool
  ///   job, each group whole on one thread (quantize its rows, shrink, expand every part in
  ///   order), so no two threads write the same element and a call costs one synchronisation,
  ///   not three;
  /// - few groups with long runs (one adapter's prefill): x quantized once, the shrinks by task,
  ///   then the expands split by column across threads.
  func applyLoRA(
    layer l: Int, x: UnsafePointer<Float>, ldx: Int,
    _ o0: (LoRAModule, UnsafeMutablePointer<Float>, Int),
    _ o1: (LoRAModule, UnsafeMutablePointer<Float>, Int)? = nil,
    _ o2: (LoRAModule, UnsafeMutablePointer<Float>, Int)? = nil
  ) {
    if loraRuns.isEmpty { return }
    loraTasks.removeAll(keepingCapacity: true)
    loraGroups.removeAll(keepingCapacity: true)
    var tTotal = 0
    let outs = LoRAOutputs(o0: o0, o1: o1, o2: o2)
    // Tasks by (run, output, part): a group's tasks are consecutive, its parts in mix order. A
    // group is one (run, output), or a whole run when there are runs enough to keep every thread
    // busy (decode with many adapters): then a run's rows are quantized once, not per output.
    let groupByRun = loraRuns.count >= 2 * pool.threads
    for run in loraRuns {
      let runFirst = loraTasks.count
      for s in 0..<3 {
        guard let o = outs[s] else { continue }
        let first = loraTasks.count
        for part in run.mix.parts {
          guard let f = part.source.factor(layer: l, module: o.0) else { continue }
          loraTasks.append(
            LoRATask(row: run.row, count: run.count, factor: f, scale: f.scale * part.scale, slot: s, t: tTotal))
          tTotal += run.count * f.rank
        }
        if !groupByRun, loraTasks.count > first { loraGroups.append(first) }
      }
      if groupByRun, loraTasks.count > runFirst { loraGroups.append(runFirst) }
    }
    if loraTasks.isEmpty { return }
    ensureLoRAScratch(t: tTotal)
    let tBase = loraT!
    let tasks = loraTasks
    let nt = tasks.count
    let cols = tasks[0].factor.cols  // every factor of the call reads the same x
    let xqStride = GGMLType.q8_0.rowBytes(cols) ?? 0
    let anyQ8 = tasks.contains { $0.factor.type == .q8_0 }

    @inline(__always) func shrink(_ task: LoRATask, _ xq: UnsafeRawPointer?) {
      let f = task.factor
      if f.type == .q8_0 {
        lk_lora_shrink_q8(
          tBase + task.t, Int64(f.rank), xq!, Int64(xqStride), Int64(task.count), f.a, Int64(f.rank), Int64(f.cols))
      } else {
        lk_lora_shrink(
          tBase + task.t, Int64(f.rank), x + task.row * ldx, Int64(ldx), Int64(task.count), f.type.code, f.a,
          Int64(f.rank), Int64(f.cols))
      }
    }
    @inline(__always) func expand(_ task: LoRATask, _ c0: Int, _ c1: Int) {
      guard let o = outs[task.slot] else { return }
      let f = task.factor
      if f.type == .q8_0 {
        lk_lora_expand_q8(
          o.1 + task.row * o.2, Int64(o.2), tBase + task.t, Int64(f.rank), Int64(task.count), f.bt, Int64(f.rank),
          Int64(f.rows), Int64(c0), Int64(c1), task.scale)
      } else {
        lk_lora_expand(
          o.1 + task.row * o.2, Int64(o.2), tBase + task.t, Int64(f.rank), Int64(task.count), f.type.code, f.bt,
          Int64(f.rank), Int64(f.rows), Int64(c0), Int64(c1), task.scale)
      }
    }

    let groups = loraGroups
    let ng = groups.count
    // Few rows (decode, short prompts): the low-rank work is small, and one pool job beats
    // three synchronisations even when a thread gets more of it than the other.
    let fewRows = loraRuns.allSatisfy { $0.count <= Self.loraFusedMaxRows }
    if ng >= 2 * pool.threads || fewRows {
      // Each group quantizes its own rows into its own slice of the scratch.
      var xqOffsets = 0
      if anyQ8 {
        for g in groups { xqOffsets += tasks[g].count * xqStride }
        ensureLoRAQuantScratch(bytes: xqOffsets)
      }
      let xqBase = loraXq
      pool.run(chunks: ng) { g, _ in
        let first = groups[g], end = g + 1 < ng ? groups[g + 1] : nt
        let head = tasks[first]
        // The group's factors are cold (each adapter's are read once per step): ask for all of
        // them now, so their misses overlap instead of following each other.
        for k in first..<end {
          let f = tasks[k].factor
          lk_prefetch_bytes(f.a, Int64(f.rank * (f.type.rowBytes(f.cols) ?? 0)))
        }
        for k in first..<end {
          let f = tasks[k].factor
          lk_prefetch_bytes(f.bt, Int64(f.rank * (f.type.rowBytes(f.rows) ?? 0)))
        }
        var xq: UnsafeMutableRawPointer? = nil
        if anyQ8 {
          // The slice after the rows of the groups before this one (Σ counts × stride).
          var off = 0
          for h in 0..<g { off += tasks[groups[h]].count * xqStride }
          let dst = xqBase! + off
          for i in 0..<head.count {
            lk_quantize_act(GGMLType.q8_0.code, x + (head.row + i) * ldx, dst + i * xqStride, Int64(cols))
          }
          xq = dst
        }
        for k in first..<end { shrink(tasks[k], xq) }
        for k in first..<end { expand(tasks[k], 0, tasks[k].factor.rows) }
      }
      return
    }

    // 0. Q8_0 factors multiply x quantized to Q8_0 (as the base's Q8_0 weights do): the rows of
    //    the runs, once per call, shared by every adapter part and output.
    if anyQ8 {
      let rows = loraRuns.last.map { $0.row + $0.count } ?? 0
      ensureLoRAQuantScratch(bytes: rows * xqStride)
      let dst = loraXq!, stride = xqStride
      each(rows) { i in lk_quantize_act(GGMLType.q8_0.code, x + i * ldx, dst + i * stride, Int64(cols)) }
    }
    let xqAll = loraXq.map { UnsafeRawPointer($0) }
    // 1. T = X_rows · Aᵀ, one task at a time, round-robin over the threads.
    pool.run { ith, nth in
      var k = ith
      while k < nt {
        let task = tasks[k]
        k += nth
        shrink(task, xqAll.map { $0 + task.row * xqStride })
      }
    }
    // 2. Y_rows[:, c0..<c1] += scale · T · Bᵀ[:, c0..<c1], columns split across threads (in
    //    multiples of 32), so no two threads write the same element.
    pool.run { ith, nth in
      for task in tasks {
        let rows = task.factor.rows
        let per = ((rows + nth - 1) / nth + 31) & ~31
        let c0 = min(rows, per * ith), c1 = min(rows, per * (ith + 1))
        if c0 < c1 { expand(task, c0, c1) }
      }
    }
  }

  /// Runs of at most this many rows always take the one-job path.
  static let loraFusedMaxRows = 16

  /// Grows the Q8_0 copy of x's rows (only ever grows).
  func ensureLoRAQuantScratch(bytes: Int) {
    if bytes > loraXqBytes {
      loraXq?.deallocate()
      loraXqBytes = max(bytes, loraXqBytes * 2)
      loraXq = .allocate(byteCount: loraXqBytes, alignment: 64)
    }
  }

  /// Grows the LoRA scratch (only ever grows; steady state allocates nothing).
  func ensureLoRAScratch(t: Int) {
    if t > loraTCount {
      loraT?.deallocate()
      loraTCount = max(t, loraTCount * 2)
      loraT = .allocate(capacity: loraTCount)
    }
  }
}
