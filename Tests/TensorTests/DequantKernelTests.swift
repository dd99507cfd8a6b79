import CKernels
import Testing

/// Dequantization: every ISA path equals the scalar reference bit for bit, and the reference
/// equals gguf-py's numpy dequantizers (fixtures from Fixtures/make_dequant_fixtures.py).
extension KernelISATests {
  @Test(arguments: KType.all)
  func dequantizeMatchesReferenceExactly(_ type: KType) {
    var rng = SeededRNG(seed: 0xD0 + UInt64(type.code))
    // several blocks; float types get a length that leaves a SIMD tail
    let n = type.isFloat ? 1003 : 8 * type.blockElems
    let raw = randomRaw(type, n, &rng)
    var ref = [Float](repeating: .nan, count: n)
    lk_dequantize_row_ref(type.code, raw, &ref, Int64(n))
    #expect(ref.allSatisfy { $0.isFinite })
    forEachISA { isa in
      var out = [Float](repeating: .nan, count: n)
      lk_dequantize_row(type.code, raw, &out, Int64(n))
      let bad = (0..<n).filter { out[$0].bitPattern != ref[$0].bitPattern }
      #expect(bad.isEmpty, "\(type) \(isaNames[Int(isa)]): \(bad.count) elements differ, first at \(bad.first ?? -1)")
    }
  }

  @Test(arguments: [KType.f16, .bf16, .q4_0, .q4_1, .q8_0, .q4_K, .q6_K])
  func dequantizeMatchesNumpyFixtures(_ type: KType) throws {
    let raw = try fixture("dequant_\(type.name).raw")
    let expected = floats(fromLE: try fixture("dequant_\(type.name).f32"))
    let n = expected.count
    #expect(type.rowBytes(n) == raw.count)
    var ref = [Float](repeating: .nan, count: n)
    lk_dequantize_row_ref(type.code, raw, &ref, Int64(n))
    #expect(ref == expected, "reference dequantization of \(type) differs from gguf-py")
    forEachISA { isa in
      var out = [Float](repeating: .nan, count: n)
      lk_dequantize_row(type.code, raw, &out, Int64(n))
      #expect(out == expected, "\(type) \(isaNames[Int(isa)]) differs from gguf-py")
    }
  }

  @Test func dequantizeRowsMultithreaded() {
    var rng = SeededRNG(seed: 77)
    let rows = 37, cols = 576
    let (raw, deq) = randomWeights(.q4_1, rows: rows, cols: cols, &rng)
    for threads in [1, 2, 3] {
      let pool = lk_pool_create(Int32(threads))
      defer { lk_pool_destroy(pool) }
      var out = [Float](repeating: .nan, count: rows * cols)
      lk_dequantize_rows_mt(pool, KType.q4_1.code, raw, &out, Int64(cols), Int64(rows))
      #expect(out == deq)
    }
  }
}

struct TypeTableTests {
  @Test func blockSizesMatchGGML() {
    let expected: [(KType, Int, Int)] = [
      (.f32, 1, 4), (.f16, 1, 2), (.bf16, 1, 2), (.q4_0, 32, 18), (.q4_1, 32, 20), (.q8_0, 32, 34),
      (.q8_1, 32, 36), (.q4_K, 256, 144), (.q6_K, 256, 210), (.q8_K, 256, 292),
    ]
    for (t, elems, bytes) in expected {
      #expect(lk_type_known(t.code) == 1)
      #expect(t.blockElems == elems && t.blockBytes == bytes, "\(t)")
    }
    #expect(lk_type_known(6) == 0)  // Q5_0: not supported
    #expect(KType.q4_1.rowBytes(576) == 360)
  }

  @Test func activationPartners() {
    let pairs: [(KType, KType)] = [
      (.q4_0, .q8_0), (.q8_0, .q8_0), (.q4_1, .q8_1), (.q4_K, .q8_K), (.q6_K, .q8_K), (.f32, .f32), (.f16, .f32),
      (.bf16, .f32),
    ]
    for (w, a) in pairs {
      #expect(lk_act_type(w.code) == a.code, "\(w)")
      #expect(lk_act_row_bytes(w.code, 512) == lk_row_bytes(a.code, 512))
    }
  }
}
