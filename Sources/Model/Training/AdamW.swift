import Foundation

/// AdamW (Loshchilov & Hutter) over the flat LoRA parameter vector, with global-norm gradient
/// clipping first. The arithmetic is PyTorch's `torch.optim.AdamW` step, element for element:
///   θ ← θ · (1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;
///   θ ← θ − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε).
/// It minimises: pass the gradient of the loss (`accumulateGradient` with each sequence's weight
/// = dLoss/dlog π gives exactly that).
public struct AdamW: Sendable {
  public struct Settings: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float
    /// Clip the gradient to this global L2 norm before the step (nil: no clipping).
    public var maxGradNorm: Double?

    public init(
      learningRate: Float = 1e-4, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
      weightDecay: Float = 0.01, maxGradNorm: Double? = 1.0
    ) {
      self.learningRate = learningRate
      self.beta1 = beta1
      self.beta2 = beta2
      self.eps = eps
      self.weightDecay = weightDecay
      self.maxGradNorm = maxGradNorm
    }
  }

  public var settings: Settings
  /// Steps taken (t of the bias correction).
  public internal(set) var step: Int
  /// First and second moments, laid out like the parameters: (count) each.
  public internal(set) var m: [Float]
  public internal(set) var v: [Float]
  /// The layout the moments belong to (checked at every step and load).
  public let layout: LoRALayout

  /// Zero moments for parameters laid out by `layout`.
  public init(layout: LoRALayout, settings: Settings = Settings()) {
    self.layout = layout
    self.settings = settings
    step = 0
    m = [Float](repeating: 0, count: layout.count)
    v = [Float](repeating: 0, count: layout.count)
  }

  /// Clips `gradients` (in place) when `maxGradNorm` is set, then takes one step on `parameters`.
  /// Returns the gradient's global norm before clipping.
  @discardableResult
  public mutating func update(_ parameters: inout LoRAParameters, gradients: inout LoRAGradients) throws -> Double {
    guard parameters.layout == layout, gradients.layout == layout else {
      throw TrainingError.layoutMismatch("the optimizer's moments were made for another adapter layout")
    }
    let norm = settings.maxGradNorm.map { gradients.clip(maxNorm: $0) } ?? gradients.norm
    step += 1
    let s = settings
    let bc1 = 1 - pow(Double(s.beta1), Double(step)), bc2 = 1 - pow(Double(s.beta2), Double(step))
    let stepSize = Float(Double(s.learningRate) / bc1), sqrtBc2 = Float(bc2.squareRoot())
    let decay = 1 - s.learningRate * s.weightDecay
    let b1 = s.beta1, b2 = s.beta2, eps = s.eps
    parameters.values.withUnsafeMutableBufferPointer { p in
      gradients.values.withUnsafeBufferPointer { g in
        m.withUnsafeMutableBufferPointer { m in
          v.withUnsafeMutableBufferPointer { v in
            for i in 0..<p.count {
              p[i] *= decay
              m[i] = b1 * m[i] + (1 - b1) * g[i]
              v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
              p[i] -= stepSize * m[i] / (v[i].squareRoot() / sqrtBc2 + eps)
            }
          }
        }
      }
    }
    return norm
  }
}
