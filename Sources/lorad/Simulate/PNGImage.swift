/// An 8-bit RGB raster and its PNG encoding (RFC 2083): IHDR, one IDAT holding a zlib stream
/// of stored (uncompressed) deflate blocks, IEND; CRC-32 per chunk, Adler-32 over the image
/// data. Every decoder reads it; a plot of a few hundred kilobytes needs nothing more.
struct PNGImage {
  let width: Int
  let height: Int
  /// (height, width, 3) RGB bytes, row-major.
  var pixels: [UInt8]

  /// An image filled with `background`.
  init(width: Int, height: Int, background: RGB = .white) {
    precondition(width > 0 && height > 0, "a PNG image needs at least one pixel")
    self.width = width
    self.height = height
    pixels = [UInt8](repeating: 0, count: width * height * 3)
    for i in 0..<(width * height) {
      pixels[3 * i] = background.r
      pixels[3 * i + 1] = background.g
      pixels[3 * i + 2] = background.b
    }
  }

  /// A colour.
  struct RGB: Equatable {
    var r: UInt8, g: UInt8, b: UInt8
    static let white = RGB(r: 255, g: 255, b: 255)
    static let black = RGB(r: 0, g: 0, b: 0)
    static let grey = RGB(r: 200, g: 200, b: 200)
  }

  /// Sets one pixel; outside the image nothing happens.
  mutating func set(_ x: Int, _ y: Int, _ c: RGB) {
    guard x >= 0, y >= 0, x < width, y < height else { return }
    let i = 3 * (y * width + x)
    pixels[i] = c.r
    pixels[i + 1] = c.g
    pixels[i + 2] = c.b
  }

  /// The pixel at (x, y).
  func get(_ x: Int, _ y: Int) -> RGB {
    let i = 3 * (y * width + x)
    return RGB(r: pixels[i], g: pixels[i + 1], b: pixels[i + 2])
  }

  /// The PNG file's bytes.
  func encoded() -> [UInt8] {
    var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    var header: [UInt8] = []
    Self.appendBigEndian(UInt32(width), to: &header)
    Self.appendBigEndian(UInt32(height), to: &header)
    header += [8, 2, 0, 0, 0]  // 8 bits, RGB, deflate, adaptive filtering, no interlace
    Self.appendChunk("IHDR", header, to: &out)
    // Each scanline is filter type 0 (none) followed by its bytes.
    var raw: [UInt8] = []
    raw.reserveCapacity(height * (1 + 3 * width))
    for y in 0..<height {
      raw.append(0)
      raw += pixels[(3 * y * width)..<(3 * (y + 1) * width)]
    }
    Self.appendChunk("IDAT", Self.zlibStored(raw), to: &out)
    Self.appendChunk("IEND", [], to: &out)
    return out
  }

  /// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 §3.2.4), each ≤ 65,535 bytes.
  static func zlibStored(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]  // deflate, 32 KiB window, no dictionary; (0x7801) % 31 == 0
    var start = 0
    repeat {
      let n = min(65_535, data.count - start)
      let last = start + n == data.count
      out.append(last ? 1 : 0)  // BFINAL, BTYPE 00
      out += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
      out += data[start..<(start + n)]
      start += n
    } while start < data.count
    appendBigEndian(adler32(data), to: &out)
    return out
  }

  static func appendChunk(_ type: String, _ body: [UInt8], to out: inout [UInt8]) {
    appendBigEndian(UInt32(body.count), to: &out)
    let typed = Array(type.utf8) + body
    out += typed
    appendBigEndian(crc32(typed), to: &out)
  }

  static func appendBigEndian(_ v: UInt32, to out: inout [UInt8]) {
    out += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
  }

  /// CRC-32 (ISO 3309, reflected polynomial 0xEDB88320), as PNG and zip use it.
  static func crc32(_ data: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in data {
      c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8)
    }
    return c ^ 0xFFFF_FFFF
  }

  static let crcTable: [UInt32] = (0..<256).map { n in
    var c = UInt32(n)
    for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
  }

  /// Adler-32 (RFC 1950 §8).
  static func adler32(_ data: [UInt8]) -> UInt32 {
    var a: UInt32 = 1
    var b: UInt32 = 0
    for byte in data {
      a = (a + UInt32(byte)) % 65_521
      b = (b + a) % 65_521
    }
    return (b << 16) | a
  }
}
