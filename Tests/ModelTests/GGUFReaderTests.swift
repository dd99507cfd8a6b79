import Foundation
import Tensor
import TestSupport
import Testing

@testable import Model

@Suite struct GGUFReaderTests {
  func sampleWriter() -> GGUFWriter {
    var w = GGUFWriter()
    w.set("general.architecture", "llama")
    w.set("u8", .uint(200, .uint8))
    w.set("i8", .int(-5, .int8))
    w.set("u16", .uint(60000, .uint16))
    w.set("i16", .int(-30000, .int16))
    w.set("u32", .uint(4_000_000_000, .uint32))
    w.set("i32", .int(-2_000_000_000, .int32))
    w.set("u64", .uint(1 << 60, .uint64))
    w.set("i64", .int(-(1 << 60), .int64))
    w.set("f32", float32: 1.5)
    w.set("f64", .float(2.25, .float64))
    w.set("b", bool: true)
    w.set("s", "héllo ✓")
    w.set("arr", strings: ["a", "bc", ""])
    w.set("nested", .array([.array([.int(1, .int32)], .int32), .array([], .int32)], .array))
    w.addTensor("t.f32", shape: [4, 2], floats: [1, 2, 3, 4, 5, 6, 7, 8])
    w.addTensor("t.q8", type: .q8_0, shape: [32, 3], bytes: [UInt8](repeating: 1, count: 34 * 3))
    return w
  }

  @Test func roundTripsEveryValueType() throws {
    let path = TinyModel.temporaryPath("all.gguf")
    try sampleWriter().write(to: path)
    let f = try GGUFFile(path: path)
    #expect(f.version == 3)
    #expect(f["u8"] == .uint(200, .uint8))
    #expect(f["i8"]?.int == -5)
    #expect(f["u16"]?.int == 60000)
    #expect(f["i16"]?.int == -30000)
    #expect(f["u32"]?.int == 4_000_000_000)
    #expect(f["i32"]?.int == -2_000_000_000)
    #expect(f["u64"]?.int == 1 << 60)
    #expect(f["i64"]?.int == -(1 << 60))
    #expect(f["f32"]?.double == 1.5)
    #expect(f["f64"]?.double == 2.25)
    #expect(f["b"]?.bool == true)
    #expect(f["s"]?.string == "héllo ✓")
    #expect(try f.strings("arr") == ["a", "bc", ""])
    #expect(f["nested"]?.array?.count == 2)
    #expect(f.keys.first == "general.architecture")
    let t = try f.require("t.f32")
    #expect(t.shape == [4, 2] && t.type == .f32 && t.rows == 2 && t.columns == 4)
    #expect(t.offset % f.alignment == 0)
    let p = t.data.assumingMemoryBound(to: Float.self)
    #expect(p[0] == 1 && p[7] == 8)
    let q = try f.require("t.q8")
    #expect(q.byteCount == 102 && q.type == .q8_0)
    #expect(throws: GGUFError.self) { try f.require("nope") }
  }

  @Test func everyTruncationIsAnErrorNotACrash() throws {
    let bytes = sampleWriter().bytes()
    // Cut the file at many points, header and data alike: each must throw a GGUFError.
    var cuts = Array(stride(from: 0, to: bytes.count, by: 7))
    cuts.append(bytes.count - 1)
    for n in cuts {
      let path = TinyModel.temporaryPath("cut.gguf")
      try Data(bytes[0..<n]).write(to: URL(fileURLWithPath: path))
      #expect(throws: GGUFError.self) { _ = try GGUFFile(path: path) }
      try? FileManager.default.removeItem(atPath: path)
    }
  }

  @Test func wrongMagicAndVersion() throws {
    var bytes = sampleWriter().bytes()
    let path = TinyModel.temporaryPath("magic.gguf")
    bytes[0] = UInt8(ascii: "X")
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    #expect { _ = try GGUFFile(path: path) } throws: { e in
      guard case GGUFError.badMagic = e else { return false }
      return "\(e)".contains(path)
    }
    bytes[0] = UInt8(ascii: "G")
    bytes[4] = 9
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    #expect { _ = try GGUFFile(path: path) } throws: { e in
      if case GGUFError.unsupportedVersion(_, 9) = e { return true } else { return false }
    }
  }

  /// Patches the little-endian u64 at `offset`.
  func patch64(_ b: inout [UInt8], _ offset: Int, _ v: UInt64) {
    for i in 0..<8 { b[offset + i] = UInt8((v >> (8 * UInt64(i))) & 0xff) }
  }

  @Test func absurdCountsAreRefusedBeforeAllocating() throws {
    var bytes = sampleWriter().bytes()
    let path = TinyModel.temporaryPath("absurd.gguf")
    patch64(&bytes, 8, UInt64.max / 2)  // tensor_count
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    #expect { _ = try GGUFFile(path: path) } throws: { e in
      if case GGUFError.absurdCount(_, "tensor_count", _) = e { return true } else { return false }
    }
    bytes = sampleWriter().bytes()
    patch64(&bytes, 16, 1 << 40)  // kv_count
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    #expect(throws: GGUFError.self) { _ = try GGUFFile(path: path) }
    // The first key's string length.
    bytes = sampleWriter().bytes()
    patch64(&bytes, 24, 1 << 50)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    #expect { _ = try GGUFFile(path: path) } throws: { e in
      if case GGUFError.absurdCount = e { return true } else { return false }
    }
  }

  @Test func unknownTensorTypeIsNamed() throws {
    var w = GGUFWriter()
    w.set("general.architecture", "llama")
    w.addTensor("blk.0.weird", shape: [4], floats: [1, 2, 3, 4])
    var bytes = w.bytes()
    // The type field follows name, n_dims and the one dimension; find it by the name.
    let name = Array("blk.0.weird".utf8)
    let at = (0..<bytes.count - name.count).first { Array(bytes[$0..<$0 + name.count]) == name }!
    let typeOffset = at + name.count + 4 + 8
    bytes[typeOffset] = 99
    let path = TinyModel.temporaryPath("type.gguf")
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    #expect { _ = try GGUFFile(path: path) } throws: { e in
      guard case GGUFError.unknownTensorType(_, "blk.0.weird", 99) = e else { return false }
      return "\(e)".contains("blk.0.weird")
    }
  }

  @Test func missingFileAndDirectory() {
    #expect(throws: GGUFError.self) { _ = try GGUFFile(path: "/nonexistent/model.gguf") }
    #expect(throws: GGUFError.self) { _ = try GGUFFile(path: "/tmp") }
  }

  @Test func tinyModelLoads() throws {
    let path = TinyModel.temporaryPath("tiny.gguf")
    try TinyModel.write(to: path)
    let m = try LoadedModel(path: path)
    #expect(m.model.config.layers == 2 && m.model.config.headDim == 16 && m.model.config.vocabSize == 300)
    #expect(m.model.weights.tiedOutput)
    #expect(m.template != nil)
  }

  @Test func unsupportedArchitectureAndMissingTensor() throws {
    var w = GGUFWriter()
    w.set("general.architecture", "mamba")
    let path = TinyModel.temporaryPath("arch.gguf")
    try w.write(to: path)
    #expect { _ = try LlamaModel(path: path) } throws: { e in "\(e)".contains("mamba") }
  }
}
