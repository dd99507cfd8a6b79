/// xoshiro256** seeded through SplitMix64: the one random source of sampling, so a seed
/// reproduces a generation exactly.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
  private var s: (UInt64, UInt64, UInt64, UInt64)

  public init(seed: UInt64) {
    var z = seed
    func splitmix() -> UInt64 {
      z &+= 0x9E37_79B9_7F4A_7C15
      var r = z
      r = (r ^ (r >> 30)) &* 0xBF58_476D_1CE4_E5B9
      r = (r ^ (r >> 27)) &* 0x94D0_49BB_1331_11EB
      return r ^ (r >> 31)
    }
    s = (splitmix(), splitmix(), splitmix(), splitmix())
  }

  @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

  public mutating func next() -> UInt64 {
    let result = Self.rotl(s.1 &* 5, 7) &* 9
    let t = s.1 << 17
    s.2 ^= s.0
    s.3 ^= s.1
    s.1 ^= s.2
    s.0 ^= s.3
    s.2 ^= t
    s.3 = Self.rotl(s.3, 45)
    return result
  }

  /// A uniform Float in [0, 1).
  public mutating func nextUnit() -> Float { Float(next() >> 40) * (1.0 / Float(1 << 24)) }
}
