import Foundation
import Tensor

/// One sequence to score or learn from: a prompt x and a completion y, and the weight of its
/// log π(y|x) in the objective (the loss's dLoss/dlog π for this sequence; 1 to take ∇log π).
public struct TrainingSequence: Sendable {
  public var tokens: [Int32]
  /// tokens[0..<promptLength] are the prompt x (at least one token); the rest the completion y.
  public var promptLength: Int
  public var weight: Float

  public init(tokens: [Int32], promptLength: Int, weight: Float = 1) {
    self.tokens = tokens
    self.promptLength = promptLength
    self.weight = weight
  }

  /// Completion tokens (those scored).
  public var completionLength: Int { tokens.count - promptLength }
}

/// log π(y|x) of one sequence: the sum and each completion token's log-probability.
public struct SequenceLogProb: Sendable {
  public var total: Double
  public var tokens: [Float]
}

/// Log-probabilities of completions under the frozen base plus a LoRA adapter, and their
/// gradient with respect to the adapter's factors only, in float for a few sequences at a time.
///
/// The llm.c shape: each op's backward sits next to its forward (`Training+*.swift`), backward
/// adds into its gradient outputs, and what backward needs is saved by forward in the named
/// per-layer buffers below, allocated once for `maxTokens` rows; a call allocates nothing but
/// its result arrays. The 4-bit base weights are dequantized a slice of rows (or a band of
/// columns) at a time into a per-thread scratch and multiplied with OpenBLAS sgemm.
///
/// Threads: one `ComputePool` of `threads`; OpenBLAS is set to one thread and runs inside the
/// pool's threads, each on its own slice (conventions, item 12), so the cores never carry two
/// sets of busy threads. Used from one thread at a time (the learner's), which owns the pool.
public final class LoRATrainingContext: @unchecked Sendable {  // owned by one thread (the learner's)
  public let model: LlamaModel
  public let config: LlamaConfig
  public let pool: ComputePool
  /// Rows of one pass: Σ (tokens − 1) over the sequences of a pass.
  public let maxTokens: Int
  /// Longest single sequence (tokens − 1 rows); bounds the saved attention probabilities.
  public let maxSequence: Int
  /// Largest LoRA rank, and the modules an adapter may target.
  public let rank: Int
  public let modules: [LoRAModule]

  let n0: Int  // = maxTokens, rows of every (rows, width) buffer
  let moduleSlot: [Int]  // module.index → position in `modules`, or -1

  // Saved by forward for backward, per layer l.
  /// (layers + 1, N, dim) the residual stream entering layer l (l = layers: after the last).
  let xIn: UnsafeMutablePointer<Float>
  let rstdA: UnsafeMutablePointer<Float>  // (layers, N) 1/rms of xIn, attention norm
  let q: UnsafeMutablePointer<Float>  // (layers, N, qDim) queries after bias and RoPE
  let k: UnsafeMutablePointer<Float>  // (layers, N, kvDim) keys after bias and RoPE
  let v: UnsafeMutablePointer<Float>  // (layers, N, kvDim) values
  /// (layers, heads · N · maxSequence) softmax(q·kᵀ/√hd), per sequence (heads, T, T).
  let probs: UnsafeMutablePointer<Float>
  let attOut: UnsafeMutablePointer<Float>  // (layers, N, qDim) attention output, input of o
  let xMid: UnsafeMutablePointer<Float>  // (layers, N, dim) residual after attention
  let rstdF: UnsafeMutablePointer<Float>  // (layers, N) 1/rms of xMid, feed-forward norm
  let gate: UnsafeMutablePointer<Float>  // (layers, N, ffnDim) gate projection (before SiLU)
  let up: UnsafeMutablePointer<Float>  // (layers, N, ffnDim) up projection
  let loraT: UnsafeMutablePointer<Float>  // (layers, modules, N, rank) A·x of each adapted module
  let rstdOut: UnsafeMutablePointer<Float>  // (N) 1/rms of the final residual, logit rows only
  let logits: UnsafeMutablePointer<Float>  // (N, vocab) logit rows; with gradients, softmax after forward
  let logp: UnsafeMutablePointer<Float>  // (N) log-probability of each logit row's target

  // Scratch of one layer (recomputed in backward where it is cheaper than saving it).
  let xn: UnsafeMutablePointer<Float>  // (N, dim) normed input of a sub-block; final norm of logit rows
  let hAct: UnsafeMutablePointer<Float>  // (N, ffnDim) silu(gate) ⊙ up, input of down
  let yb: UnsafeMutablePointer<Float>  // (N, dim) output of o or down before the residual add
  let ropeCos: UnsafeMutablePointer<Float>  // (N, ropeDim/2) of each row's position in its sequence
  let ropeSin: UnsafeMutablePointer<Float>  // (N, ropeDim/2)
  let invFreq: UnsafeMutablePointer<Float>  // (ropeDim/2)

  // Gradients of activations (backward only).
  let dx: UnsafeMutablePointer<Float>  // (N, dim) dL/d residual stream
  let dxn: UnsafeMutablePointer<Float>  // (N, dim) dL/d normed input of a sub-block
  let dy: UnsafeMutablePointer<Float>  // (N, max(qDim, ffnDim)) dL/d attention output, dL/d hAct
  let dq: UnsafeMutablePointer<Float>  // (N, qDim)
  let dk: UnsafeMutablePointer<Float>  // (N, kvDim)
  let dv: UnsafeMutablePointer<Float>  // (N, kvDim)
  let dGate: UnsafeMutablePointer<Float>  // (N, ffnDim)
  let dUp: UnsafeMutablePointer<Float>  // (N, ffnDim)
  let dt: UnsafeMutablePointer<Float>  // (N, rank) dL/d(A·x) of one module
  let dP: UnsafeMutablePointer<Float>  // (threads, maxSequence²) attention backward scratch per thread

  /// Dequantized weights, one region per thread: (wScratchCount) floats.
  let wScratch: UnsafeMutablePointer<Float>
  let wScratchCount: Int

  // The current pass: its sequences as runs of rows, and its logit rows.
  var seqRow: [Int] = []  // first row of each sequence
  var seqLen: [Int] = []  // rows of each sequence (tokens − 1)
  var seqProbs: [Int] = []  // offset of each sequence's (heads, T, T) probabilities in a layer's block
  var logitRow: [Int] = []  // row of each logit row
  var logitTarget: [Int32] = []  // the token each logit row scores
  var logitWeight: [Float] = []  // the weight of its sequence
  var rowToken: [Int32] = []  // the input token of each row

  /// - rank: the largest rank of an adapter this context trains; modules: the modules it may adapt.
  /// - maxTokens: rows of one pass (Σ over its sequences of tokens − 1); longer batches are split.
  /// - maxSequence: the longest sequence (tokens − 1); defaults to maxTokens.
  public init(
    model: LlamaModel, rank: Int, targets: [LoRAModule] = LoRAModule.allCases, maxTokens: Int,
    maxSequence: Int? = nil, threads: Int
  ) {
    self.model = model
    let c = model.config
    config = c
    self.rank = max(1, rank)
    modules = LoRAModule.allCases.filter(targets.contains)
    var ms = [Int](repeating: -1, count: LoRAModule.allCases.count)
    for (i, m) in modules.enumerated() { ms[m.index] = i }
    moduleSlot = ms
    self.maxTokens = max(1, maxTokens)
    self.maxSequence = min(self.maxTokens, max(1, maxSequence ?? maxTokens))
    pool = ComputePool(threads: threads)
    BLAS.setThreads(1)  // OpenBLAS runs inside our pool's threads, one slice each
    let N = self.maxTokens, L = c.layers
    n0 = N
    func buf(_ n: Int) -> UnsafeMutablePointer<Float> {
      let p = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
      p.initialize(repeating: 0, count: max(n, 1))
      return p
    }
    xIn = buf((L + 1) * N * c.dim)
    rstdA = buf(L * N)
    q = buf(L * N * c.qDim)
    k = buf(L * N * c.kvDim)
    v = buf(L * N * c.kvDim)
    probs = buf(L * c.heads * N * self.maxSequence)
    attOut = buf(L * N * c.qDim)
    xMid = buf(L * N * c.dim)
    rstdF = buf(L * N)
    gate = buf(L * N * c.ffnDim)
    up = buf(L * N * c.ffnDim)
    loraT = buf(L * modules.count * N * self.rank)
    rstdOut = buf(N)
    logits = buf(N * c.vocabSize)
    logp = buf(N)
    xn = buf(N * c.dim)
    hAct = buf(N * c.ffnDim)
    yb = buf(N * c.dim)
    ropeCos = buf(N * c.ropeDim / 2)
    ropeSin = buf(N * c.ropeDim / 2)
    invFreq = buf(c.ropeDim / 2)
    for i in 0..<(c.ropeDim / 2) {
      invFreq[i] = Float(pow(Double(c.ropeBase), -2.0 * Double(i) / Double(c.ropeDim)))
    }
    dx = buf(N * c.dim)
    dxn = buf(N * c.dim)
    dy = buf(N * max(c.qDim, c.ffnDim))
    dq = buf(N * c.qDim)
    dk = buf(N * c.kvDim)
    dv = buf(N * c.kvDim)
    dGate = buf(N * c.ffnDim)
    dUp = buf(N * c.ffnDim)
    dt = buf(N * self.rank)
    dP = buf(pool.threads * self.maxSequence * self.maxSequence)
    // Enough for the largest matrix at once on every thread, and at least 256 rows of the head.
    wScratchCount = max(c.ffnDim * c.dim, c.qDim * c.dim, 256 * c.dim * pool.threads)
    wScratch = buf(wScratchCount)
    seqRow.reserveCapacity(N)
    seqLen.reserveCapacity(N)
    seqProbs.reserveCapacity(N)
    logitRow.reserveCapacity(N)
    logitTarget.reserveCapacity(N)
    logitWeight.reserveCapacity(N)
    rowToken.reserveCapacity(N)
  }

  deinit {
    for p in [
      xIn, rstdA, q, k, v, probs, attOut, xMid, rstdF, gate, up, loraT, rstdOut, logits, logp, xn, hAct, yb, ropeCos,
      ropeSin, invFreq, dx, dxn, dy, dq, dk, dv, dGate, dUp, dt, dP, wScratch,
    ] {
      p.deallocate()
    }
  }

  /// Bytes of the buffers this context holds.
  public var bytes: Int {
    let c = config, N = n0, L = c.layers
    let saved =
      (L + 1) * N * c.dim + 2 * L * N + L * N * (2 * c.qDim + 2 * c.kvDim + c.dim + 2 * c.ffnDim)
      + L * c.heads * N * maxSequence + L * modules.count * N * rank
    let scratch =
      N * (3 * c.dim + c.ffnDim + c.ropeDim + c.vocabSize + 2) + N * (2 * c.dim + max(c.qDim, c.ffnDim) + c.qDim)
      + N * (2 * c.kvDim + 2 * c.ffnDim + rank) + pool.threads * maxSequence * maxSequence + wScratchCount
    return (saved + scratch) * MemoryLayout<Float>.size
  }

  // MARK: - public API

  /// log π(y|x) of each sequence under the base plus `adapter` (nil: the base alone).
  public func logProbs(_ sequences: [TrainingSequence], adapter: LoRAParameters?) throws -> [SequenceLogProb] {
    try run(sequences, adapter: adapter, grads: nil, weighting: nil)
  }

  /// log π(y|x) of one sequence: the sum over its completion tokens.
  public func logProb(tokens: [Int32], promptLength: Int, adapter: LoRAParameters?) throws -> Double {
    try logProbs([TrainingSequence(tokens: tokens, promptLength: promptLength)], adapter: adapter)[0].total
  }

  /// Each completion token's log-probability.
  public func tokenLogProbs(tokens: [Int32], promptLength: Int, adapter: LoRAParameters?) throws -> [Float] {
    try logProbs([TrainingSequence(tokens: tokens, promptLength: promptLength)], adapter: adapter)[0].tokens
  }

  /// Adds ∇_θ Σ_s weight_s · log π_θ(y_s|x_s) (θ: the adapter's A and B) into `gradients`, and
  /// returns each sequence's log π (computed on the way).
  @discardableResult
  public func accumulateGradient(
    _ sequences: [TrainingSequence], adapter: LoRAParameters, into gradients: inout LoRAGradients
  ) throws -> [SequenceLogProb] {
    guard gradients.layout == adapter.layout else {
      throw TrainingError.layoutMismatch("the gradients were made for another adapter layout than the parameters")
    }
    return try gradients.values.withUnsafeMutableBufferPointer { g in
      try run(sequences, adapter: adapter, grads: g.baseAddress!, weighting: nil)
    }
  }

  /// Adds ∇_θ Σ_s w_s · log π_θ(y_s|x_s) into `gradients` where each weight w_s is chosen from
  /// the sequence's own log π_θ, computed by the same forward the backward then uses: one
  /// forward and one backward, where a loss needing log π_θ first (KTO: the weight is
  /// dLoss/dlog π at the current policy) would otherwise cost a second forward.
  /// `weighting(s, log π_θ of sequence s)` is called once per sequence (s indexes `sequences`)
  /// before its backward; `sequences[s].weight` is ignored. Returns each sequence's log π_θ.
  @discardableResult
  public func accumulateGradient(
    _ sequences: [TrainingSequence], adapter: LoRAParameters, into gradients: inout LoRAGradients,
    weighting: (Int, SequenceLogProb) -> Float
  ) throws -> [SequenceLogProb] {
    guard gradients.layout == adapter.layout else {
      throw TrainingError.layoutMismatch("the gradients were made for another adapter layout than the parameters")
    }
    return try withoutActuallyEscaping(weighting) { w in
      try gradients.values.withUnsafeMutableBufferPointer { g in
        try run(sequences, adapter: adapter, grads: g.baseAddress!, weighting: w)
      }
    }
  }

  /// Adds weight · ∇_θ log π_θ(y|x) into `gradients`; returns log π_θ(y|x).
  @discardableResult
  public func accumulateGradient(
    tokens: [Int32], promptLength: Int, adapter: LoRAParameters, weight: Float = 1,
    into gradients: inout LoRAGradients
  ) throws -> Double {
    try accumulateGradient(
      [TrainingSequence(tokens: tokens, promptLength: promptLength, weight: weight)], adapter: adapter,
      into: &gradients)[0].total
  }

  // MARK: - passes

  /// Checks the sequences and the adapter, packs the sequences into passes of at most
  /// `maxTokens` rows, and runs forward (and backward) over each.
  func run(
    _ sequences: [TrainingSequence], adapter: LoRAParameters?, grads: UnsafeMutablePointer<Float>?,
    weighting: ((Int, SequenceLogProb) -> Float)?
  ) throws -> [SequenceLogProb] {
    if let adapter { try check(adapter.layout) }
    for (i, s) in sequences.enumerated() {
      guard s.promptLength >= 1, s.promptLength < s.tokens.count else {
        throw TrainingError.badSequence(
          "sequence \(i): prompt length \(s.promptLength) of \(s.tokens.count) tokens; need a prompt of at least one token and a completion of at least one"
        )
      }
      guard s.tokens.count - 1 <= maxSequence else {
        throw TrainingError.badSequence(
          "sequence \(i) has \(s.tokens.count) tokens; this context takes up to \(maxSequence + 1) (raise maxSequence)")
      }
      if let bad = s.tokens.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
        throw TrainingError.badSequence("sequence \(i): token \(bad) is outside the vocabulary of \(config.vocabSize)")
      }
    }
    var out: [SequenceLogProb] = []
    var start = 0
    while start < sequences.count {
      var end = start, rows = 0
      while end < sequences.count && rows + sequences[end].tokens.count - 1 <= maxTokens {
        rows += sequences[end].tokens.count - 1
        end += 1
      }
      let pass = sequences[start..<end]
      out += passLogProbs(pass, adapter: adapter, grads: grads) { k, lp in weighting?(start + k, lp) }
      start = end
    }
    return out
  }

  func check(_ layout: LoRALayout) throws {
    guard layout.layers == config.layers else {
      throw TrainingError.layoutMismatch("the adapter has \(layout.layers) layers, the model \(config.layers)")
    }
    for s in layout.slots {
      guard s.rank <= rank, moduleSlot[s.module.index] >= 0 else {
        throw TrainingError.layoutMismatch(
          "\(s.module.rawValue) of layer \(s.layer) has rank \(s.rank); this context trains ranks up to \(rank) on \(modules.map(\.rawValue))"
        )
      }
      guard (s.rows, s.cols) == s.module.shape(config) else {
        throw TrainingError.layoutMismatch("\(s.module.rawValue) of layer \(s.layer) is \(s.rows)×\(s.cols)")
      }
    }
  }

  /// One pass: forward over the sequences (rows of all sequences side by side), then, when
  /// gradients are wanted, each sequence's weight (`weighting(k, log π)` for the k-th sequence of
  /// the pass, or its own `weight` when that returns nil) and the backward.
  func passLogProbs(
    _ pass: ArraySlice<TrainingSequence>, adapter: LoRAParameters?, grads: UnsafeMutablePointer<Float>?,
    weighting: (Int, SequenceLogProb) -> Float?
  ) -> [SequenceLogProb] {
    layOut(pass)
    let layout = adapter?.layout
    func body(_ params: UnsafePointer<Float>?) -> [SequenceLogProb] {
      forward(pass, layout: layout, params: params, keepSoftmax: grads != nil)
      let result = collect(pass)
      if let grads, let layout, let params {
        var j = 0
        for (k, s) in pass.enumerated() {
          let w = weighting(k, result[k]) ?? s.weight
          for _ in 0..<s.completionLength {
            logitWeight[j] = w
            j += 1
          }
        }
        backward(layout: layout, params: params, grads: grads)
      }
      return result
    }
    if let adapter {
      return adapter.values.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
    return body(nil)
  }

  /// Rows, attention blocks and logit rows of a pass.
  func layOut(_ pass: ArraySlice<TrainingSequence>) {
    seqRow.removeAll(keepingCapacity: true)
    seqLen.removeAll(keepingCapacity: true)
    seqProbs.removeAll(keepingCapacity: true)
    logitRow.removeAll(keepingCapacity: true)
    logitTarget.removeAll(keepingCapacity: true)
    logitWeight.removeAll(keepingCapacity: true)
    rowToken.removeAll(keepingCapacity: true)
    var row = 0, p = 0
    for s in pass {
      let T = s.tokens.count - 1  // the last token is only scored, never an input
      seqRow.append(row)
      seqLen.append(T)
      seqProbs.append(p)
      rowToken.append(contentsOf: s.tokens[0..<T])
      for i in (s.promptLength - 1)..<T {
        logitRow.append(row + i)
        logitTarget.append(s.tokens[i + 1])
        logitWeight.append(s.weight)
      }
      row += T
      p += config.heads * T * T
    }
  }

  /// Rows in the current pass.
  var rows: Int { (seqRow.last ?? 0) + (seqLen.last ?? 0) }

  /// The log-probabilities of the pass's logit rows, by sequence.
  func collect(_ pass: ArraySlice<TrainingSequence>) -> [SequenceLogProb] {
    var out: [SequenceLogProb] = []
    var j = 0
    for s in pass {
      var toks: [Float] = []
      toks.reserveCapacity(s.completionLength)
      var total: Double = 0
      for _ in 0..<s.completionLength {
        let lp = logp[j]
        toks.append(lp)
        total += Double(lp)
        j += 1
      }
      out.append(SequenceLogProb(total: total, tokens: toks))
    }
    return out
  }
}
