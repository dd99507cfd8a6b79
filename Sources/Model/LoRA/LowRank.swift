import Tensor

/// One low-rank update ΔW = scale · B·A of a base weight (rows × cols), in the form the forward
/// multiplies: A is (rank, cols) and Bᵀ is (rank, rows), both row-major, F16, F32 or Q8_0 (ggml's
/// blocks of 32 int8 with an F16 scale; cols and rows multiples of 32), so both halves stream long
/// contiguous rows. The memory
/// belongs to the `LowRankSource` that handed it out, which outlives every step using it.
public struct LowRankFactor: @unchecked Sendable {  // points into its source's immutable buffers
  public let rank: Int
  public let rows: Int
  public let cols: Int
  /// alpha / r (rsLoRA: alpha / √r); a request's own scale multiplies it.
  public let scale: Float
  public let type: GGMLType
  public let a: UnsafeRawPointer  // (rank, cols); Q8_0 rows, or records when aPacked
  public let bt: UnsafeRawPointer  // F16 / F32: Bᵀ, (rank, rows); Q8_0: B by rows (see lk_lora_expand_q8)
  /// Q8_0 only, where the CPU has AVX-512: A is held prepacked (lk_lora_pack_a_q8), which a
  /// decoding row's shrink reads as one linear stream (lk_lora_shrink_q8_packed).
  public let aPacked: Bool

  public init(
    rank: Int, rows: Int, cols: Int, scale: Float, type: GGMLType, a: UnsafeRawPointer, bt: UnsafeRawPointer,
    aPacked: Bool = false
  ) {
    precondition(type == .f16 || type == .f32 || type == .q8_0, "LoRA factors are F16, F32 or Q8_0")
    precondition(type != .q8_0 || (rows % 32 == 0 && cols % 32 == 0), "Q8_0 factors need multiples of 32")
    self.rank = rank
    self.rows = rows
    self.cols = cols
    self.scale = scale
    self.type = type
    self.a = a
    self.bt = bt
    precondition(!aPacked || type == .q8_0, "only Q8_0 factors are prepacked")
    self.aPacked = aPacked
  }
}

/// An adapter as the forward sees it: its factor for a (layer, module), or nil where it leaves
/// the base alone. Immutable, so a sequence keeps exactly the weights it started with.
public protocol LowRankSource: AnyObject, Sendable {
  var name: String { get }
  func factor(layer: Int, module: LoRAModule) -> LowRankFactor?
}

/// What one sequence applies on top of the base: one or more adapters, each with a user scale
/// (a weighted sum of their deltas).
public final class AdapterMix: Sendable {
  public struct Part: Sendable {
    public let source: any LowRankSource
    public let scale: Float
    public init(source: any LowRankSource, scale: Float) {
      self.source = source
      self.scale = scale
    }
  }
  public let parts: [Part]

  public init(_ parts: [Part]) { self.parts = parts }
  public convenience init(_ source: any LowRankSource, scale: Float = 1) {
    self.init([Part(source: source, scale: scale)])
  }

  public var description: String { parts.map { "\($0.source.name):\($0.scale)" }.joined(separator: "+") }
}
