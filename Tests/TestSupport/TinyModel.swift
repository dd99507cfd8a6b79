import CKernels
import Foundation
import Model
import Tensor

/// A tiny Llama-family model with random weights, written as a real GGUF file: the fast unit
/// tests' model. Deterministic for a seed.
public enum TinyModel {
  public struct Shape: Sendable {
    public var arch = "llama"
    public var layers = 2
    public var dim = 64
    public var heads = 4
    public var kvHeads = 2
    public var ffn = 128
    public var vocab = 300
    public var ctx = 256
    public var weightType: GGMLType = .q4_1
    public var embeddingType: GGMLType = .q8_0
    public var tiedOutput = true
    public init() {}
  }

  /// Byte-level vocabulary: the 256 byte tokens, a few merges, and ChatML control tokens.
  public static func vocabulary(_ n: Int) -> (tokens: [String], types: [Int32], merges: [String]) {
    var toks: [String] = []
    var types: [Int32] = []
    // GPT-2's byte-to-unicode map: printable bytes stand for themselves, others shift to 256+.
    var map: [Character] = []
    var extra = 0
    for b in 0..<256 {
      let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
      if printable {
        map.append(Character(Unicode.Scalar(UInt8(b))))
      } else {
        map.append(Character(Unicode.Scalar(UInt32(256 + extra))!))
        extra += 1
      }
    }
    for b in 0..<256 {
      toks.append(String(map[b]))
      types.append(1)
    }
    let sp = String(map[32])
    let merges = ["\(sp) t", "h e", "\(sp)t he", "i n", "a n", "e r", "o n", "\(sp) a", "r e", "e n"]
    for m in merges { toks.append(m.replacingOccurrences(of: " ", with: "")); types.append(1) }
    for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
      toks.append(s)
      types.append(3)
    }
    while toks.count < n {
      toks.append("<unused\(toks.count)>")
      types.append(5)
    }
    return (toks, types, merges)
  }

  /// Writes the model to `path`.
  /// `transform(name, rows, cols, weights)` may change a matrix's float weights before they are
  /// quantized (e.g. to merge a LoRA delta into a reference model).
  public static func write(
    to path: String, shape s: Shape = Shape(), seed: UInt64 = 1,
    transform: (String, Int, Int, [Float]) -> [Float] = { $3 }
  ) throws {
    var rng = Xoshiro256(seed: seed)
    func randn(_ n: Int, scale: Float) -> [Float] {
      (0..<n).map { _ in
        // Irwin–Hall approximation of a normal: good enough for weights.
        var a: Float = 0
        for _ in 0..<4 { a += rng.nextUnit() }
        return (a - 2) * scale * 1.7
      }
    }
    var current = ""
    func quantized(_ rows: Int, _ cols: Int, _ type: GGMLType, scale: Float) -> [UInt8] {
      let f = transform(current, rows, cols, randn(rows * cols, scale: scale))
      if type == .f32 { return f.withUnsafeBytes { Array($0) } }
      let rb = type.rowBytes(cols)!
      var out = [UInt8](repeating: 0, count: rb * rows)
      f.withUnsafeBufferPointer { fp in
        out.withUnsafeMutableBytes { ob in
          for r in 0..<rows {
            lk_quantize_row(type.code, fp.baseAddress! + r * cols, ob.baseAddress! + r * rb, Int64(cols))
          }
        }
      }
      return out
    }
    let hd = s.dim / s.heads
    var w = GGUFWriter()
    w.set("general.architecture", s.arch)
    w.set("general.name", "tiny-test")
    w.set("\(s.arch).block_count", uint32: UInt32(s.layers))
    w.set("\(s.arch).context_length", uint32: UInt32(s.ctx))
    w.set("\(s.arch).embedding_length", uint32: UInt32(s.dim))
    w.set("\(s.arch).feed_forward_length", uint32: UInt32(s.ffn))
    w.set("\(s.arch).attention.head_count", uint32: UInt32(s.heads))
    w.set("\(s.arch).attention.head_count_kv", uint32: UInt32(s.kvHeads))
    w.set("\(s.arch).rope.freq_base", float32: 10000)
    w.set("\(s.arch).attention.layer_norm_rms_epsilon", float32: 1e-5)
    let v = vocabulary(s.vocab)
    w.set("tokenizer.ggml.model", "gpt2")
    w.set("tokenizer.ggml.pre", "smollm")
    w.set("tokenizer.ggml.tokens", strings: v.tokens)
    w.set("tokenizer.ggml.token_type", int32s: v.types)
    w.set("tokenizer.ggml.merges", strings: v.merges)
    w.set("tokenizer.ggml.bos_token_id", uint32: 266)
    w.set("tokenizer.ggml.eos_token_id", uint32: 266)
    w.set("tokenizer.ggml.add_bos_token", bool: false)
    w.set(
      "tokenizer.chat_template",
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    )
    current = "token_embd.weight"
    w.addTensor(
      "token_embd.weight", type: s.embeddingType, shape: [s.dim, s.vocab],
      bytes: quantized(s.vocab, s.dim, s.embeddingType, scale: 1))
    w.addTensor("output_norm.weight", shape: [s.dim], floats: randn(s.dim, scale: 0.1).map { 1 + $0 })
    if !s.tiedOutput {
      current = "output.weight"
      w.addTensor(
        "output.weight", type: s.weightType, shape: [s.dim, s.vocab],
        bytes: quantized(s.vocab, s.dim, s.weightType, scale: 0.2))
    }
    let kv = s.kvHeads * hd
    for l in 0..<s.layers {
      let p = "blk.\(l)."
      let sc = 1 / Float(s.dim).squareRoot()
      w.addTensor(p + "attn_norm.weight", shape: [s.dim], floats: randn(s.dim, scale: 0.1).map { 1 + $0 })
      current = p + "attn_q.weight"
      w.addTensor(
        p + "attn_q.weight", type: s.weightType, shape: [s.dim, s.dim],
        bytes: quantized(s.dim, s.dim, s.weightType, scale: sc))
      current = p + "attn_k.weight"
      w.addTensor(
        p + "attn_k.weight", type: s.weightType, shape: [s.dim, kv],
        bytes: quantized(kv, s.dim, s.weightType, scale: sc))
      current = p + "attn_v.weight"
      w.addTensor(
        p + "attn_v.weight", type: s.weightType, shape: [s.dim, kv],
        bytes: quantized(kv, s.dim, s.weightType, scale: sc))
      current = p + "attn_output.weight"
      w.addTensor(
        p + "attn_output.weight", type: s.weightType, shape: [s.dim, s.dim],
        bytes: quantized(s.dim, s.dim, s.weightType, scale: sc))
      if s.arch == "qwen2" {
        w.addTensor(p + "attn_q.bias", shape: [s.dim], floats: randn(s.dim, scale: 0.1))
        w.addTensor(p + "attn_k.bias", shape: [kv], floats: randn(kv, scale: 0.1))
        w.addTensor(p + "attn_v.bias", shape: [kv], floats: randn(kv, scale: 0.1))
      }
      w.addTensor(p + "ffn_norm.weight", shape: [s.dim], floats: randn(s.dim, scale: 0.1).map { 1 + $0 })
      current = p + "ffn_gate.weight"
      w.addTensor(
        p + "ffn_gate.weight", type: s.weightType, shape: [s.dim, s.ffn],
        bytes: quantized(s.ffn, s.dim, s.weightType, scale: sc))
      current = p + "ffn_up.weight"
      w.addTensor(
        p + "ffn_up.weight", type: s.weightType, shape: [s.dim, s.ffn],
        bytes: quantized(s.ffn, s.dim, s.weightType, scale: sc))
      current = p + "ffn_down.weight"
      w.addTensor(
        p + "ffn_down.weight", type: s.weightType, shape: [s.ffn, s.dim],
        bytes: quantized(s.dim, s.ffn, s.weightType, scale: 1 / Float(s.ffn).squareRoot()))
    }
    try w.write(to: path)
  }

  /// A fresh temporary path for a test file.
  public static func temporaryPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorad-tests-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent("\(UUID().uuidString)-\(name)").path
  }
}
