import Foundation

/// The head of the training pass — final RMSNorm, output product (the tied token embedding when
/// the model has no output.weight), log-softmax of the target — for the rows that score a
/// completion token only; forward next to its backward.
extension LoRATrainingContext {
  /// logp[j] = log softmax(W_out · norm(x[row_j]))[target_j] for each logit row j. With
  /// `keepSoftmax`, logits[j] holds the softmax itself afterwards (what the backward needs).
  func headForward(keepSoftmax: Bool) {
    let c = config, w = model.weights, V = c.vocabSize, dim = c.dim
    let M = logitRow.count
    let xL = xIn + c.layers * n0 * dim
    logitRow.withUnsafeBufferPointer { r in
      rmsnormForward(xn, rstdOut, xL, w.outputNorm, n: M, rows: r.baseAddress)
    }
    baseForward(logits, ldy: V, w.output, xn, ldx: dim, n: M)
    let logits = self.logits, logp = self.logp
    logitTarget.withUnsafeBufferPointer { targets in
      each(M) { j in
        let row = logits + j * V
        var mx = -Float.infinity
        for i in 0..<V where row[i] > mx { mx = row[i] }
        var sum: Double = 0
        let target = Double(row[Int(targets[j])] - mx)
        if keepSoftmax {
          for i in 0..<V {
            let e = expf(row[i] - mx)
            row[i] = e
            sum += Double(e)
          }
          logp[j] = Float(target - log(sum))
          let inv = Float(1 / sum)
          for i in 0..<V { row[i] *= inv }
        } else {
          for i in 0..<V { sum += Double(expf(row[i] - mx)) }
          logp[j] = Float(target - log(sum))
        }
      }
    }
  }

  /// dlogits[j] = weight_j · (onehot(target_j) − softmax[j]) (in place), dxn = dlogits · W_out,
  /// then dx[row_j] += the final norm's backward.
  func headBackward() {
    let c = config, w = model.weights, V = c.vocabSize, dim = c.dim
    let M = logitRow.count
    let logits = self.logits
    logitTarget.withUnsafeBufferPointer { targets in
      logitWeight.withUnsafeBufferPointer { weights in
        each(M) { j in
          let row = logits + j * V, wt = weights[j]
          for i in 0..<V { row[i] *= -wt }
          row[Int(targets[j])] += wt
        }
      }
    }
    dxn.update(repeating: 0, count: M * dim)
    baseBackward(dxn, lddx: dim, w.output, logits, lddy: V, n: M)
    let xL = xIn + c.layers * n0 * dim
    logitRow.withUnsafeBufferPointer { r in
      rmsnormBackward(dx, dxn, xL, rstdOut, w.outputNorm, n: M, rows: r.baseAddress)
    }
  }
}
