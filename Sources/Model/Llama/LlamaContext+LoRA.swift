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
        let xr = UnsafeRawPointer(x + task.row * ldx)
        lk_matmul(
          f.type.code, tBase + task.t, Int64(f.rank), f.a, xr, Int64(ldx * 4), Int64(task.count), Int64(f.cols), 0,
          Int64(f.rank))
      }
    }
    // 2. Y_rows[:, c0..<c1] += scale · T · B[c0..<c1]ᵀ, columns split across threads.
    let uBase = loraU!, uPer = loraUPerThread
    pool.run { ith, nth in
      let u = uBase + ith * uPer
      for task in tasks {
        guard let o = outs[task.slot] else { continue }
        let f = task.factor
        let c0 = f.rows * ith / nth, c1 = f.rows * (ith + 1) / nth
        if c0 >= c1 { continue }
        let w = c1 - c0
        // lk_matmul writes U[t * w + (r - c0)] for rows r of B in [c0, c1).
        lk_matmul(
          f.type.code, u - c0, Int64(w), f.b, UnsafeRawPointer(tBase + task.t), Int64(f.rank * 4), Int64(task.count),
          Int64(f.rank), Int64(c0), Int64(c1))
        let y = o.1, ldy = o.2
        for t in 0..<task.count {
          lk_axpy_f32(y + (task.row + t) * ldy + c0, task.scale, u + t * w, Int64(w))
        }
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
    if loraU == nil {
      let c = config
      let widest = max(c.qDim, c.ffnDim, c.dim)
      loraUPerThread = maxBatch * ((widest + pool.threads - 1) / pool.threads)
      loraU = .allocate(capacity: loraUPerThread * pool.threads)
    }
  }
}
