/// The seven projections of a Llama block a LoRA adapter may target, by their PEFT names.
public enum LoRAModule: String, CaseIterable, Sendable, Codable {
  case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
  case gate = "gate_proj", up = "up_proj", down = "down_proj"

  /// llama.cpp's GGUF tensor name stem (`blk.N.<stem>.weight`).
  public var ggufName: String {
    switch self {
    case .q: return "attn_q"
    case .k: return "attn_k"
    case .v: return "attn_v"
    case .o: return "attn_output"
    case .gate: return "ffn_gate"
    case .up: return "ffn_up"
    case .down: return "ffn_down"
    }
  }

  /// (output rows, input columns) of the base weight this module adapts.
  public func shape(_ c: LlamaConfig) -> (rows: Int, cols: Int) {
    switch self {
    case .q: return (c.qDim, c.dim)
    case .k, .v: return (c.kvDim, c.dim)
    case .o: return (c.dim, c.qDim)
    case .gate, .up: return (c.ffnDim, c.dim)
    case .down: return (c.dim, c.ffnDim)
    }
  }

  /// Which of the forward's four LoRA calls per layer reads this module's factors, in the order
  /// it makes them: q, k, v (one x), o, gate and up (one x), down.
  public var forwardCall: Int {
    switch self {
    case .q, .k, .v: return 0
    case .o: return 1
    case .gate, .up: return 2
    case .down: return 3
    }
  }

  /// Position in `allCases`, for tables indexed by module.
  public var index: Int {
    switch self {
    case .q: return 0
    case .k: return 1
    case .v: return 2
    case .o: return 3
    case .gate: return 4
    case .up: return 5
    case .down: return 6
    }
  }
}
