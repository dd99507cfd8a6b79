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
  /// run and every output s of this call (q, k, v share x; gate, up share x). Two pool jobs:
  /// the (count, rank) intermediates by task, then the outputs split by column across threads,
  /// so no two threads write the same element. Base rows without adapters are untouched.
  func applyLoRA(
    layer l: Int, x: UnsafePointer<Float>, ldx: Int,
    _ o0: (LoRAModule, UnsafeMutablePointer<Float>, Int),
    _ o1: (LoRAModule, UnsafeMutablePointer<Float>, Int)? = nil,
    _ o2: (LoRAModule, UnsafeMutablePointer<Float>, Int)? = nil
  ) {
    if loraRuns.isEmpty { return }
    loraTasks.removeAll(keepingCapacity: true)
    var tTotal = 0
    let outs = LoRAOutputs(o0: o0, o1: o1, o2: o2)
    for run in loraRuns {
      for part in run.mix.parts {
        for s in 0..<3 {
          guard let o = outs[s], let f = part.source.factor(layer: l, module: o.0) else { continue }
          loraTasks.append(
            LoRATask(row: run.row, count: run.count, factor: f, scale: f.scale * part.scale, slot: s, t: tTotal))
          tTotal += run.count * f.rank
        }
      }
    }
    if loraTasks.isEmpty { return }
    ensureLoRAScratch(t: tTotal)
    let tBase = loraT!
    let tasks = loraTasks
    let nt = tasks.count
    // 1. T = X_rows · Aᵀ, one task at a time, round-robin over the threads.
    pool.run { ith, nth in
      var k = ith
      while k < nt {
        let task = tasks[k]
        k += nth
        let f = task.factor
        lk_lora_shrink(
          tBase + task.t, Int64(f.rank), x + task.row * ldx, Int64(ldx), Int64(task.count), f.type.code, f.a,
          Int64(f.rank), Int64(f.cols))
      }
    }
    // 2. Y_rows[:, c0..<c1] += scale · T · Bᵀ[:, c0..<c1], columns split across threads (in
    //    multiples of 16), so no two threads write the same element.
    pool.run { ith, nth in
      for task in tasks {
        guard let o = outs[task.slot] else { continue }
        let f = task.factor
        let per = ((f.rows + nth - 1) / nth + 15) & ~15
        let c0 = min(f.rows, per * ith), c1 = min(f.rows, per * (ith + 1))
        if c0 >= c1 { continue }
        lk_lora_expand(
          o.1 + task.row * o.2, Int64(o.2), tBase + task.t, Int64(f.rank), Int64(task.count), f.type.code, f.bt,
          Int64(f.rank), Int64(f.rows), Int64(c0), Int64(c1), task.scale)
      }
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
