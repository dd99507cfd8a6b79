import CKernels

/// Chooses tokens from logits: repetition penalty, then greedy or temperature with top-k,
/// top-p and min-p, as llama.cpp's sampler chain does. Owns its candidate buffers (vocab
/// sized, allocated once); `sample` allocates nothing.
public final class Sampler {
  public var options: SamplingOptions
  private var rng: Xoshiro256
  private let ids: UnsafeMutablePointer<Int32>  // (vocab) candidate token ids
  private let probs: UnsafeMutablePointer<Float>  // (vocab) candidate logits, then probabilities
  private var recent: [Int32] = []  // last repeatLastN tokens, oldest first
  private var unpenalized: [Float] = []  // logits of `recent` before the penalty, during `pick`
  public let vocabSize: Int

  public init(vocabSize: Int, options: SamplingOptions) {
    self.vocabSize = vocabSize
    self.options = options
    rng = Xoshiro256(seed: options.seed)
    ids = .allocate(capacity: vocabSize)
    probs = .allocate(capacity: vocabSize)
    recent.reserveCapacity(max(options.repeatLastN, 1))
    unpenalized.reserveCapacity(max(options.repeatLastN, 1))
  }

  deinit {
    ids.deallocate()
    probs.deallocate()
  }

  /// Remembers a token of the context (prompt or generated) for the repetition penalty.
  public func accept(_ token: Int32) {
    guard options.repeatLastN > 0 else { return }
    if recent.count == options.repeatLastN { recent.removeFirst() }
    recent.append(token)
  }

  /// The index of the largest logit, the first if it occurs more than once; NaNs never win
  /// (`lk_argmax`).
  public static func argmax(_ logits: UnsafePointer<Float>, _ n: Int) -> Int32 {
    Int32(lk_argmax(logits, Int64(n)))
  }

  /// Picks the next token from `logits` (vocab floats; the penalty is applied in place).
  public func sample(_ logits: UnsafeMutablePointer<Float>) -> Int32 { pick(logits).token }

  /// `sample`, also returning the chosen token's logit as it was before the repetition penalty.
  public func pick(_ logits: UnsafeMutablePointer<Float>) -> (token: Int32, logit: Float) {
    let o = options
    guard o.repeatPenalty != 1, !recent.isEmpty else {
      let t = choose(logits)
      return (t, logits[Int(t)])
    }
    unpenalized.removeAll(keepingCapacity: true)
    for t in recent { unpenalized.append(logits[Int(t)]) }
    for t in recent {
      let i = Int(t)
      logits[i] = logits[i] > 0 ? logits[i] / o.repeatPenalty : logits[i] * o.repeatPenalty
    }
    let t = choose(logits)
    if let j = recent.firstIndex(of: t) { return (t, unpenalized[j]) }
    return (t, logits[Int(t)])
  }

  /// The token chosen from `logits` as they are (any penalty already applied).
  private func choose(_ logits: UnsafeMutablePointer<Float>) -> Int32 {
    let o = options
    let n = vocabSize
    if o.temperature <= 0 { return Self.argmax(logits, n) }

    // Candidates: the top-k (or all) by logit, sorted descending.
    let k = o.topK > 0 ? min(o.topK, n) : n
    var m = 0
    let ids = self.ids, pr = self.probs
    do {
      do {
        if k == n {
          for i in 0..<n {
            ids[i] = Int32(i)
            pr[i] = logits[i]
          }
          m = n
          sortDescending(ids, pr, m)
        } else {
          // Keep a sorted list of the k best seen so far (k is small). Once it holds k, only
          // the logits above its smallest can enter: lk_first_above skips to the next of them.
          var i = 0
          while i < n {
            if m == k {
              i = Int(lk_first_above(logits, Int64(i), Int64(n), pr[m - 1]))
              if i == n { break }
            }
            let index = i, v = logits[i]
            i += 1
            var j = m < k ? m : k - 1
            if m < k { m += 1 }
            while j > 0 && pr[j - 1] < v {
              pr[j] = pr[j - 1]
              ids[j] = ids[j - 1]
              j -= 1
            }
            pr[j] = v
            ids[j] = Int32(index)
          }
        }
        // Softmax with temperature.
        let mx = pr[0]
        var sum: Float = 0
        for i in 0..<m {
          let e = expf((pr[i] - mx) / o.temperature)
          pr[i] = e
          sum += e
        }
        for i in 0..<m { pr[i] /= sum }
        // top-p
        if o.topP < 1 {
          var cum: Float = 0
          var keep = m
          for i in 0..<m {
            cum += pr[i]
            if cum >= o.topP {
              keep = i + 1
              break
            }
          }
          m = keep
        }
        // min-p
        if o.minP > 0 {
          let floor = pr[0] * o.minP
          var keep = 1
          while keep < m && pr[keep] >= floor { keep += 1 }
          m = keep
        }
      }
    }
    var total: Float = 0
    for i in 0..<m { total += probs[i] }
    let r = rng.nextUnit() * total
    var acc: Float = 0
    for i in 0..<m {
      acc += probs[i]
      if r < acc { return ids[i] }
    }
    return ids[m - 1]
  }

  private func sortDescending(_ ids: UnsafeMutablePointer<Int32>, _ pr: UnsafeMutablePointer<Float>, _ m: Int) {
    var order = Array(0..<m)
    order.sort { pr[$0] > pr[$1] || (pr[$0] == pr[$1] && $0 < $1) }
    let p2 = order.map { pr[$0] }
    let i2 = order.map { ids[$0] }
    for i in 0..<m {
      pr[i] = p2[i]
      ids[i] = i2[i]
    }
  }
}

#if canImport(Glibc)
  import Glibc
#endif
