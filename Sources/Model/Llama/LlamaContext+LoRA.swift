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

/// What `planLoRA` decided for one call, for `loraShrink` and `finishLoRA`.
struct LoRACall {
  var outs: LoRAOutputs
  var x: UnsafePointer<Float>
  var ldx: Int
  var cols: Int
  var xqStride: Int
  var anyQ8: Bool
  var byGroup: Bool  // groups whole on one thread, as side chunks of the base product
  var delta: UnsafeMutablePointer<Float>  // the sums Δ of every output: see deltaRows
  /// The base product's activations of the same x, when quantized alike (Q8_0 or Q8_1):
  /// the Q8_0 rows the factors multiply are then read (Q8_0) or rearranged (Q8_1) from them
  /// instead of quantizing x again.
  var shared: Activations?

  /// Where output s's low-rank sum starts in `delta` (n rows of its ldy floats per output).
  func deltaRows(_ s: Int, rows n: Int) -> UnsafeMutablePointer<Float> {
    var off = 0
    for p in 0..<s { off += n * (outs[p]?.2 ?? 0) }
    return delta + off
  }

  /// The shared rows themselves when they are Q8_0 (read in place), with their stride.
  var sharedQ8_0: (rows: UnsafeRawPointer, stride: Int)? {
    guard let a = shared, let q = a.q, a.actType == GGMLType.q8_0.code else { return nil }
    return (q, a.qStride)
  }
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
    loraRowRun.removeAll(keepingCapacity: true)
    loraRowRun.append(contentsOf: repeatElement(-1, count: n))
    loraRows = n
    loraPending = nil
    var i = 0
    while i < n {
      guard let mix = batch.adapters[i] else {
        i += 1
        continue
      }
      var j = i + 1
      while j < n, let m = batch.adapters[j], m === mix { j += 1 }
      for r in i..<j { loraRowRun[r] = loraRuns.count }
      loraRuns.append(LoRARun(row: i, count: j - i, mix: mix))
      i = j
    }
  }

  /// y_s[rows of each run] += Δ_s, Δ_s = Σ over the run's adapter parts of user scale · factor
  /// scale · B·(A·x), for every output s of this call (q, k, v share x; gate, up share x). Base
  /// rows without adapters are untouched. A call is planned before its base product (`planLoRA`)
  /// and finished after it (`finishLoRA`); Δ goes to a scratch, and the step that next reads y's
  /// rows adds it (`applyLoRA(row:)`, in the same pool job), so no job waits for the low-rank
  /// work alone. Two ways to share the work, with the same arithmetic per row:
  /// - many (run, output) groups (decode with several adapters) or only short runs: each group
  ///   whole on one thread (`loraGroup`: its rows quantized, its shrinks, then its expands, which
  ///   read its factors in the order they are laid out), as side chunks in the base product's
  ///   pool job: memory-bound side work next to the products' compute;
  /// - few groups with long runs (one adapter's prefill), all in `finishLoRA`: x quantized once,
  ///   the shrinks by task, then the expands split by column across threads.
  /// Returns the number of side chunks for the base product (0: nothing rides along).
  func planLoRA(
    layer l: Int, x: UnsafePointer<Float>, ldx: Int, sharing base: Activations? = nil,
    _ o0: (LoRAModule, UnsafeMutablePointer<Float>, Int),
    _ o1: (LoRAModule, UnsafeMutablePointer<Float>, Int)? = nil,
    _ o2: (LoRAModule, UnsafeMutablePointer<Float>, Int)? = nil
  ) -> Int {
    loraCall = nil
    precondition(loraPending == nil, "the last LoRA call's sums were not applied")
    if loraRuns.isEmpty { return 0 }
    loraTasks.removeAll(keepingCapacity: true)
    loraGroups.removeAll(keepingCapacity: true)
    loraWritten.removeAll(keepingCapacity: true)
    loraWritten.append(contentsOf: repeatElement(false, count: 3 * loraRuns.count))
    var tTotal = 0
    let outs = LoRAOutputs(o0: o0, o1: o1, o2: o2)
    // Tasks by (run, output, part): a group's tasks are consecutive, its parts in mix order. A
    // group is one (run, output), or a whole run when there are runs enough to keep every thread
    // busy (decode with many adapters): then a run's rows are quantized once, not per output.
    let groupByRun = loraRuns.count >= 2 * pool.threads
    for (ri, run) in loraRuns.enumerated() {
      let runFirst = loraTasks.count
      for s in 0..<3 {
        guard let o = outs[s] else { continue }
        let first = loraTasks.count
        for part in run.mix.parts {
          guard let f = part.source.factor(layer: l, module: o.0) else { continue }
          loraTasks.append(
            LoRATask(row: run.row, count: run.count, factor: f, scale: f.scale * part.scale, slot: s, t: tTotal))
          tTotal += run.count * f.rank
          loraWritten[3 * ri + s] = true
        }
        if !groupByRun, loraTasks.count > first { loraGroups.append(first) }
      }
      if groupByRun, loraTasks.count > runFirst { loraGroups.append(runFirst) }
    }
    if loraTasks.isEmpty { return 0 }
    Self.grow(&loraT, &loraTCount, to: tTotal)
    Self.grow(&loraDelta, &loraDeltaCount, to: loraRows * (o0.2 + (o1?.2 ?? 0) + (o2?.2 ?? 0)))
    let cols = loraTasks[0].factor.cols  // every factor of the call reads the same x
    let xqStride = GGMLType.q8_0.rowBytes(cols) ?? 0
    let anyQ8 = loraTasks.contains { $0.factor.type == .q8_0 }
    let ng = loraGroups.count
    // Few rows (decode, short prompts): the low-rank work is small, and whole groups on one
    // thread beat three synchronisations even when a thread gets more of it than the other.
    let fewRows = loraRuns.allSatisfy { $0.count <= Self.loraFusedMaxRows }
    let byGroup = ng >= 2 * pool.threads || fewRows
    if byGroup, anyQ8 {
      // Each group quantizes its own rows into its own slice of the scratch.
      loraXqOffsets.removeAll(keepingCapacity: true)
      var off = 0
      for g in loraGroups {
        loraXqOffsets.append(off)
        off += loraTasks[g].count * xqStride
      }
      ensureLoRAQuantScratch(bytes: off)
    }
    var shared: Activations? = nil
    if let base, base.q != nil, base.x == x, base.ldx == ldx, base.cols == cols,
      base.actType == GGMLType.q8_0.code || base.actType == Int32(LK_Q8_1)
    {
      shared = base
    }
    loraCall = LoRACall(
      outs: outs, x: x, ldx: ldx, cols: cols, xqStride: xqStride, anyQ8: anyQ8, byGroup: byGroup, delta: loraDelta!,
      shared: shared)
    return byGroup ? ng : 0
  }

  /// Row `row` of the call's x as Q8_0 at dst: rearranged from the shared Q8_1 activations, or
  /// quantized. (Shared Q8_0 activations are read in place, see `loraShrink`.)
  @inline(__always) func loraQuantizeRow(_ call: LoRACall, _ row: Int, _ dst: UnsafeMutableRawPointer) {
    if let a = call.shared, let q = a.q, a.actType == Int32(LK_Q8_1) {
      lk_q8_1_to_q8_0(q + row * a.qStride, dst, Int64(call.cols))
    } else {
      lk_quantize_act(GGMLType.q8_0.code, call.x + row * call.ldx, dst, Int64(call.cols))
    }
  }

  /// Tasks [first, end) of group g.
  @inline(__always) func loraGroupRange(_ g: Int) -> Range<Int> {
    loraGroups[g]..<(g + 1 < loraGroups.count ? loraGroups[g + 1] : loraTasks.count)
  }

  /// Group g of the planned call whole (see `planLoRA`): its rows quantized (for Q8_0 factors),
  /// A·x of each of its tasks, then their expands into Δ.
  func loraGroup(_ g: Int) {
    guard let call = loraCall else { return }
    let range = loraGroupRange(g)
    let head = loraTasks[range.lowerBound]
    var xq: UnsafeRawPointer? = nil
    var stride = call.xqStride
    if call.anyQ8 {
      if let (rows, rowStride) = call.sharedQ8_0 {
        xq = rows + head.row * rowStride
        stride = rowStride
      } else {
        let dst = loraXq! + loraXqOffsets[g]
        for i in 0..<head.count { loraQuantizeRow(call, head.row + i, dst + i * call.xqStride) }
        xq = UnsafeRawPointer(dst)
      }
    }
    for k in range { loraShrinkTask(loraTasks[k], xq, stride, call) }
    for k in range {
      let task = loraTasks[k]
      let first = k == range.lowerBound || loraTasks[k - 1].slot != task.slot
      loraExpandTask(task, 0, task.factor.rows, call, first: first)
    }
  }

  /// After the planned call's base product (and its `loraGroup` side chunks): the whole call
  /// for the other way; then its Δ waits for `applyLoRA(row:)`.
  func finishLoRA() {
    guard let call = loraCall else { return }
    loraCall = nil
    loraPending = call
    if call.byGroup { return }
    let tasks = loraTasks
    let nt = tasks.count
    // 0. Q8_0 factors multiply x quantized to Q8_0 (as the base's Q8_0 weights do): the rows of
    //    the runs, once per call, shared by every adapter part and output.
    var xqAll = loraXq.map { UnsafeRawPointer($0) }
    var xqStride = call.xqStride
    if call.anyQ8 {
      if let (rows, rowStride) = call.sharedQ8_0 {
        xqAll = rows
        xqStride = rowStride
      } else {
        let rows = loraRuns.last.map { $0.row + $0.count } ?? 0
        ensureLoRAQuantScratch(bytes: rows * call.xqStride)
        let dst = loraXq!, stride = call.xqStride
        each(rows) { i in self.loraQuantizeRow(call, i, dst + i * stride) }
        xqAll = UnsafeRawPointer(dst)
      }
    }
    // 1. T = X_rows · Aᵀ, one task at a time, round-robin over the threads.
    pool.run { [xqAll, xqStride] ith, nth in
      var k = ith
      while k < nt {
        let task = tasks[k]
        k += nth
        self.loraShrinkTask(task, xqAll.map { $0 + task.row * xqStride }, xqStride, call)
      }
    }
    // 2. Δ_rows[:, c0..<c1] += scale · T · Bᵀ[:, c0..<c1], columns split across threads (in
    //    multiples of 32), so no two threads write the same element; each (run, output)'s first
    //    task clears its part first.
    pool.run { ith, nth in
      for (k, task) in tasks.enumerated() {
        let rows = task.factor.rows
        let per = ((rows + nth - 1) / nth + 31) & ~31
        let c0 = min(rows, per * ith), c1 = min(rows, per * (ith + 1))
        let first = k == 0 || tasks[k - 1].slot != task.slot || tasks[k - 1].row != task.row
        if c0 < c1 { self.loraExpandTask(task, c0, c1, call, first: first) }
      }
    }
  }

  /// Adds the last finished call's Δ to row i of each of its outputs (nothing for rows without
  /// adapters, or outputs their adapters leave alone). Called once per row by the step that
  /// next reads those rows, before it reads them.
  @inline(__always) func applyLoRA(row i: Int) {
    guard let call = loraPending else { return }
    let r = loraRowRun[i]
    if r < 0 { return }
    for s in 0..<3 where loraWritten[3 * r + s] {
      guard let o = call.outs[s] else { continue }
      lk_axpy_f32(o.1 + i * o.2, 1, call.deltaRows(s, rows: loraRows) + i * o.2, Int64(o.2))
    }
  }

  /// t = A · x for the rows of one task (x rows quantized at xq for Q8_0 factors).
  @inline(__always) func loraShrinkTask(
    _ task: LoRATask, _ xq: UnsafeRawPointer?, _ xqStride: Int, _ call: LoRACall
  ) {
    let f = task.factor
    if f.aPacked {
      lk_lora_shrink_q8_packed(
        loraT! + task.t, Int64(f.rank), xq!, Int64(xqStride), Int64(task.count), f.a, Int64(f.rank), Int64(f.cols))
    } else if f.type == .q8_0 {
      lk_lora_shrink_q8(
        loraT! + task.t, Int64(f.rank), xq!, Int64(xqStride), Int64(task.count), f.a, Int64(f.rank),
        Int64(f.cols))
    } else {
      lk_lora_shrink(
        loraT! + task.t, Int64(f.rank), call.x + task.row * call.ldx, Int64(call.ldx), Int64(task.count),
        f.type.code, f.a, Int64(f.rank), Int64(f.cols))
    }
  }

  /// Δ[rows of the task, c0..<c1] += scale · Bᵀ-weighted sum of its t (cleared first when
  /// `first`: the first task of its run and output).
  @inline(__always) func loraExpandTask(_ task: LoRATask, _ c0: Int, _ c1: Int, _ call: LoRACall, first: Bool) {
    guard let o = call.outs[task.slot] else { return }
    let f = task.factor
    let y = call.deltaRows(task.slot, rows: loraRows) + task.row * o.2
    if first {
      for i in 0..<task.count { (y + i * o.2 + c0).update(repeating: 0, count: c1 - c0) }
    }
    if f.type == .q8_0 {
      lk_lora_expand_q8(
        y, Int64(o.2), loraT! + task.t, Int64(f.rank), Int64(task.count), f.bt, Int64(f.rank),
        Int64(f.rows), Int64(c0), Int64(c1), task.scale)
    } else {
      lk_lora_expand(
        y, Int64(o.2), loraT! + task.t, Int64(f.rank), Int64(task.count), f.type.code, f.bt,
        Int64(f.rank), Int64(f.rows), Int64(c0), Int64(c1), task.scale)
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

  /// Grows a float scratch to at least n (only ever grows, doubling: steady state allocates nothing).
  static func grow(_ p: inout UnsafeMutablePointer<Float>?, _ count: inout Int, to n: Int) {
    if n > count {
      p?.deallocate()
      count = max(n, count * 2)
      p = .allocate(capacity: count)
    }
  }
}
