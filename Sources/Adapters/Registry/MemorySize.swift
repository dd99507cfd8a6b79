import Foundation

/// Byte counts as people write them: "256MB", "1.5G", "4096", "512KiB". Units are powers of
/// 1024 whether or not they carry the "i" (as `--memory 256m` means 256 MiB in most tools).
public enum MemorySize {
  private static let units: [(String, Int)] = [
    ("kib", 1 << 10), ("mib", 1 << 20), ("gib", 1 << 30), ("tib", 1 << 40),
    ("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30), ("tb", 1 << 40),
    ("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("t", 1 << 40), ("b", 1),
  ]

  /// Parses a size; throws `RegistryError.badArgument` for anything else or a size below 1 byte.
  public static func parse(_ text: String) throws -> Int {
    let s = text.trimmingCharacters(in: .whitespaces).lowercased()
    var number = Substring(s)
    var multiplier = 1
    for (suffix, m) in units where s.hasSuffix(suffix) {
      number = s.dropLast(suffix.count)
      multiplier = m
      break
    }
    guard let v = Double(number.trimmingCharacters(in: .whitespaces)), v.isFinite, v >= 1,
      v * Double(multiplier) < Double(Int.max / 2)
    else {
      throw RegistryError.badArgument(
        "'\(text)' is not a memory size; write a number with an optional unit, e.g. 256MB, 1.5GB, 4096")
    }
    return Int(v * Double(multiplier))
  }

  /// A short human form: "512 B", "12.5 KB", "256 MB" (powers of 1024).
  public static func format(_ bytes: Int) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    var v = Double(bytes)
    for u in ["KB", "MB", "GB", "TB"] {
      v /= 1024
      if v < 1024 || u == "TB" {
        let r = v < 10 ? (v * 10).rounded() / 10 : v.rounded()
        return r == r.rounded() ? "\(Int(r)) \(u)" : "\(r) \(u)"
      }
    }
    return "\(bytes) B"
  }
}
