import Foundation
import Model
import Tensor
import TestSupport
import Testing

@testable import Adapters

@Suite struct GGUFLoRATests {
  typealias F = FormatFixture

  /// A GGUF LoRA made by hand: metadata as given (nil leaves a key out), F32 tensors (ne order).
  func file(
    type: String? = "adapter", arch: String = "llama", adapterType: String? = "lora", alpha: Float? = 8,
    extra: (inout GGUFWriter) -> Void = { _ in }, tensors: [(String, [Int])]
  ) throws -> String {
    var w = GGUFWriter()
    w.set("general.architecture", arch)
    if let type { w.set("general.type", type) }
    if let adapterType { w.set("adapter.type", adapterType) }
    if let alpha { w.set("adapter.lora.alpha", float32: alpha) }
    extra(&w)
    for (name, ne) in tensors {
      w.addTensor(name, shape: ne, floats: (0..<ne.reduce(1, *)).map { Float($0 % 5) * 0.25 })
    }
    let path = TinyModel.temporaryPath("lora.gguf")
    try w.write(to: path)
    return path
  }

  /// lora_a / lora_b of `blk.L.<stem>.weight` at `rank`, in ne order, for the tiny config.
  func pair(_ l: Int, _ m: LoRAModule, rank: Int) -> [(String, [Int])] {
    let (rows, cols) = m.shape(F.tiny)
    return [
      ("blk.\(l).\(m.ggufName).weight.lora_a", [cols, rank]), ("blk.\(l).\(m.ggufName).weight.lora_b", [rank, rows]),
    ]
  }

  @Test func scaleIsAlphaOverRankOrOneWithoutAlpha() throws {
    let w = try LoRALoader.load(
      path: file(alpha: 8, tensors: pair(0, .q, rank: 4) + pair(1, .down, rank: 2)), config: F.tiny)
    #expect(w.pairs[LoRATarget(layer: 0, module: .q)]!.scale == 2)
    #expect(w.pairs[LoRATarget(layer: 1, module: .down)]!.scale == 4)
    let p = w.pairs[LoRATarget(layer: 1, module: .down)]!
    #expect(p.rank == 2 && p.rows == 64 && p.cols == 128)
    for alpha: Float? in [nil, 0] {
      let n = try LoRALoader.load(path: file(alpha: alpha, tensors: pair(0, .k, rank: 4)), config: F.tiny)
      #expect(n.pairs.first!.value.scale == 1)
    }
  }

  @Test func writeThenReadGivesTheSameNumbers() throws {
    let w = F.random(
      "g", F.tiny, targets: F.targets(layers: [0, 1], LoRAModule.allCases), rank: { _ in 4 }, scale: { _ in 1.5 })
    for type in [GGMLType.f32, .f16] {
      let path = TinyModel.temporaryPath("w.gguf")
      try GGUFLoRA.write(w, architecture: "llama", to: path, type: type)
      let back = try LoRALoader.load(path: path, config: F.tiny)
      #expect(back.name == "w" || back.name.hasSuffix("-w"))
      if type == .f32 {
        #expect(sameNumbers(w, back))
      } else {
        for (t, p) in w.pairs {
          #expect(back.pairs[t]!.b == p.b.map { Float(Float16($0)) } && back.pairs[t]!.scale == 1.5)
        }
      }
      let f = try GGUFFile(path: path)
      #expect(f["general.type"]?.string == "adapter" && f["adapter.lora.alpha"]?.double == 6)
    }
  }

  /// One alpha per file: differing scales are folded into B, so scale·B·A is unchanged.
  @Test func differingScalesFoldIntoB() throws {
    let ts = F.targets(layers: [0], [.q, .v, .down])
    let w = F.random(
      "fold", F.tiny, targets: ts, rank: { $0.module == .down ? 8 : 4 }, scale: { $0.module == .v ? 0.5 : 2 })
    let path = TinyModel.temporaryPath("fold.gguf")
    try GGUFLoRA.write(w, architecture: "llama", to: path)
    let back = try LoRALoader.load(path: path, config: F.tiny)
    for (t, p) in w.pairs {
      let q = back.pairs[t]!
      #expect(q.rank == p.rank && q.a == p.a)
      let err = zip(p.b, q.b).map { abs(p.scale * $0 - q.scale * $1) }.max()!
      #expect(err < 1e-6, "\(t)")
    }
    #expect(back.pairs[LoRATarget(layer: 0, module: .q)]!.scale == 2)  // alpha 8 from the first pair
    #expect(back.pairs[LoRATarget(layer: 0, module: .down)]!.scale == 1)  // 8 / 8, B doubled
  }

  @Test func quantizedMatricesAreDequantized() throws {
    // lora_a of q as Q8_0: per row of 64, two blocks of (f16 d = 0.5, 32 int8 q) -> 0.5·q.
    let rank = 2
    var bytes: [UInt8] = []
    var want: [Float] = []
    for r in 0..<rank {
      for _ in 0..<2 {
        bytes += withUnsafeBytes(of: Float16(0.5).bitPattern.littleEndian) { Array($0) }
        for i in 0..<32 {
          let q = Int8((i * 7 + r * 3) % 31 - 15)
          bytes.append(UInt8(bitPattern: q))
          want.append(0.5 * Float(q))
        }
      }
    }
    var w = GGUFWriter()
    w.set("general.architecture", "llama")
    w.set("general.type", "adapter")
    w.set("adapter.type", "lora")
    w.set("adapter.lora.alpha", float32: 4)
    w.addTensor("blk.0.attn_q.weight.lora_a", type: .q8_0, shape: [64, rank], bytes: bytes)
    w.addTensor("blk.0.attn_q.weight.lora_b", shape: [rank, 64], floats: [Float](repeating: 0.25, count: 64 * rank))
    let path = TinyModel.temporaryPath("q8.gguf")
    try w.write(to: path)
    let p = try LoRALoader.load(path: path, config: F.tiny).pairs[LoRATarget(layer: 0, module: .q)]!
    #expect(p.a == want && p.scale == 2)
  }

  @Test func normVectorsAreSkippedAsLlamaCppDoes() throws {
    let w = try LoRALoader.load(
      path: file(tensors: pair(0, .v, rank: 2) + [("blk.0.attn_norm.weight", [64])]), config: F.tiny)
    #expect(Array(w.pairs.keys) == [LoRATarget(layer: 0, module: .v)])
  }

  @Test func refusals() throws {
    func check(_ path: String, _ what: String, _ match: (AdapterError) -> Bool) {
      let e = formatError { _ = try LoRALoader.load(path: path, config: F.tiny) }
      guard let e, match(e) else {
        Issue.record("\(what): got \(String(describing: e))")
        return
      }
      #expect(e.description.contains(what), "\(e)")
    }
    check(try file(type: nil, tensors: pair(0, .q, rank: 2)), "general.type") {
      if case .notAnAdapter = $0 { return true } else { return false }
    }
    check(try file(arch: "qwen2", tensors: pair(0, .q, rank: 2)), "qwen2") {
      if case .architectureMismatch = $0 { return true } else { return false }
    }
    check(try file(adapterType: "control_vector", tensors: pair(0, .q, rank: 2)), "control_vector") {
      if case .unsupported = $0 { return true } else { return false }
    }
    check(
      try file(
        extra: { $0.set("adapter.alora.invocation_tokens", .array([.uint(5, .uint32)], .uint32)) },
        tensors: pair(0, .q, rank: 2)), "alora"
    ) { if case .unsupported = $0 { return true } else { return false } }
    check(
      try file(tensors: [("token_embd.weight.lora_a", [64, 2]), ("token_embd.weight.lora_b", [2, 300])]), "token_embd"
    ) {
      if case .unknownModule = $0 { return true } else { return false }
    }
    check(try file(tensors: [("blk.0.attn_qkv.weight.lora_a", [64, 2])]), "blk.0.attn_qkv.weight.lora_a") {
      if case .unknownModule = $0 { return true } else { return false }
    }
    check(try file(tensors: [("blk.0.attn_q.weight", [64, 64])]), "blk.0.attn_q.weight") {
      if case .unexpectedTensor = $0 { return true } else { return false }
    }
    check(try file(tensors: [pair(0, .q, rank: 2)[1]]), "blk.0.attn_q.weight.lora_b") {
      if case .missingPair = $0 { return true } else { return false }
    }
    check(
      try file(tensors: [("blk.0.attn_k.weight.lora_a", [64, 2]), ("blk.0.attn_k.weight.lora_b", [2, 64])]), "lora_b"
    ) {
      if case .shapeMismatch(_, _, [2, 64], [2, 32]) = $0 { return true } else { return false }
    }
    check(
      try file(tensors: [("blk.0.attn_k.weight.lora_a", [64, 2]), ("blk.0.attn_k.weight.lora_b", [4, 32])]), "lora_b"
    ) {
      if case .rankMismatch(_, _, 4, 2, _) = $0 { return true } else { return false }
    }
    check(try file(tensors: pair(2, .q, rank: 2)), "blk.2.attn_q") {
      if case .layerOutOfRange = $0 { return true } else { return false }
    }
    check(
      try file(tensors: [("blk.0.attn_q.weight.lora_a", [64, 2, 1]), ("blk.0.attn_q.weight.lora_b", [2, 64])]),
      "3 dimensions"
    ) {
      if case .unexpectedTensor = $0 { return true } else { return false }
    }
    check(try file(tensors: []), "no LoRA tensors") { if case .empty = $0 { return true } else { return false } }
    // A file the GGUF reader refuses comes back as its GGUFError.
    let good = try file(tensors: pair(0, .q, rank: 2))
    let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
    let cut = TinyModel.temporaryPath("cut.gguf")
    try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: cut))
    check(cut, "blk.0.attn_q.weight.lora_b") {
      if case .gguf(.tensorOutOfBounds) = $0 { return true } else { return false }
    }
  }
}
