import Testing

@testable import lorad

/// The PNG writer against Python's zlib and binascii (Fixtures/make_png_fixture.py, whose output
/// is Fixtures/tiny_png.txt), and the stored-block stream decoded back.
@Suite struct PNGImageTests {
  static func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex {
      let j = s.index(i, offsetBy: 2)
      out.append(UInt8(s[i..<j], radix: 16)!)
      i = j
    }
    return out
  }

  /// The 70,000-byte pattern of the fixture script.
  static let big: [UInt8] = (0..<70_000).map { i in UInt8((i * 7 + i / 256) & 0xFF) }

  @Test func tinyImageEqualsPythonsBytes() {
    var img = PNGImage(width: 3, height: 2)
    for y in 0..<2 {
      for x in 0..<3 {
        img.set(x, y, .init(r: UInt8(10 * x + y), g: UInt8(100 + x), b: UInt8(200 - 50 * y)))
      }
    }
    let expected = Self.hex(
      "89504e470d0a1a0a0000000d49484452000000030000000208020000001216f14d0000001f494441547801011400ebff0000"
        + "64c80a65c81466c8000164960b659615669641ba06b8d71401ca0000000049454e44ae426082")
    #expect(img.encoded() == expected)
  }

  @Test func checksumsEqualPythons() {
    #expect(PNGImage.crc32(Array("123456789".utf8)) == 0xCBF4_3926)  // the CRC-32 check value
    #expect(PNGImage.crc32(Self.big) == 0x59AF_A61B)
    #expect(PNGImage.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)  // RFC 1950's worked example
    #expect(PNGImage.adler32(Self.big) == 0x2596_36E1)
  }

  @Test func storedBlocksSplitAt65535AndDecodeBack() {
    let z = PNGImage.zlibStored(Self.big)
    #expect(z.count == 70_016)  // as Python's zlib.compress(big, 0)
    #expect(z[0] == 0x78 && (UInt16(z[0]) << 8 | UInt16(z[1])) % 31 == 0)
    // Walk the blocks: BFINAL/BTYPE byte, LEN, NLEN, bytes.
    var p = 2
    var out: [UInt8] = []
    var final = false
    while !final {
      final = z[p] & 1 == 1
      #expect(z[p] >> 1 == 0)  // stored
      let n = Int(z[p + 1]) | Int(z[p + 2]) << 8
      let nn = Int(z[p + 3]) | Int(z[p + 4]) << 8
      #expect(n ^ nn == 0xFFFF && n <= 65_535)
      out += z[(p + 5)..<(p + 5 + n)]
      p += 5 + n
    }
    #expect(out == Self.big)
    #expect(Array(z[p...]) == [0x25, 0x96, 0x36, 0xE1])
    #expect(PNGImage.zlibStored([]).count == 2 + 5 + 4)
  }

  @Test func plotDrawsEachSeriesInItsColour() {
    let red = PNGImage.RGB(r: 214, g: 39, b: 40)
    let plot = LinePlot(
      title: "TEST", xLabel: "EVENTS",
      series: [.init(label: "A", color: red, points: [(0, 0.2), (100, 0.9)])], width: 400, height: 300)
    let img = plot.render()
    #expect(img.width == 400 && img.height == 300)
    var count = 0
    for y in 0..<300 { for x in 0..<400 where img.get(x, y) == red { count += 1 } }
    #expect(count > 200)  // the line, its dots and the legend swatch
    #expect(img.encoded().count > 400 * 300 * 3)
    for glyph in LinePlot.font.values { #expect(glyph.count == 15) }
  }
}
