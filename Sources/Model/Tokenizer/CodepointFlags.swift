/// The Unicode classes the pre-tokenizer regexes ask about (`\p{L}`, `\p{N}`, `\s`, …), per
/// code point, as llama.cpp's `unicode_cpt_flags` has them.
///
/// Taken from Swift's `Unicode.Scalar.Properties`, with one correction: llama.cpp's tables are
/// Unicode 15.1, so a code point assigned later (Swift's tables are newer) counts as unassigned
/// here. With that rule the general categories and the White_Space set agree with llama.cpp's
/// `unicode-data.cpp` on all 0x110000 code points (checked when this file was written).
struct CodepointFlags: OptionSet, Sendable {
  let rawValue: UInt16

  static let undefined = CodepointFlags(rawValue: 1 << 0)  // Cn
  static let number = CodepointFlags(rawValue: 1 << 1)  // \p{N}
  static let letter = CodepointFlags(rawValue: 1 << 2)  // \p{L}
  static let separator = CodepointFlags(rawValue: 1 << 3)  // \p{Z}
  static let mark = CodepointFlags(rawValue: 1 << 4)  // \p{M}
  static let punctuation = CodepointFlags(rawValue: 1 << 5)  // \p{P}
  static let symbol = CodepointFlags(rawValue: 1 << 6)  // \p{S}
  static let control = CodepointFlags(rawValue: 1 << 7)  // \p{C} other than Cn
  static let whitespace = CodepointFlags(rawValue: 1 << 8)  // \s (White_Space)

  /// The flags of a position past the end of the text being split: none at all, which every
  /// rule treats as "no match".
  static let outside = CodepointFlags([])

  /// The newest Unicode version llama.cpp's tables know.
  static let unicodeVersion = (major: 15, minor: 1)

  /// Flags of the ASCII code points, precomputed.  // (128)
  private static let ascii: [CodepointFlags] = (0..<128).map { compute(UInt32($0)) }

  @inline(__always)
  static func of(_ value: UInt32) -> CodepointFlags {
    value < 128 ? ascii[Int(value)] : compute(value)
  }

  private static func compute(_ value: UInt32) -> CodepointFlags {
    // Lone surrogates cannot reach us (Swift strings are valid UTF-8); llama.cpp calls them Cs.
    guard let scalar = Unicode.Scalar(value) else { return .control }
    let properties = scalar.properties
    if let age = properties.age,
      age.major > unicodeVersion.major
        || (age.major == unicodeVersion.major && age.minor > unicodeVersion.minor)
    {
      return .undefined
    }
    var flags: CodepointFlags
    switch properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: flags = .number
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
      flags = .letter
    case .spaceSeparator, .lineSeparator, .paragraphSeparator: flags = .separator
    case .nonspacingMark, .spacingMark, .enclosingMark: flags = .mark
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
      .initialPunctuation, .finalPunctuation, .otherPunctuation:
      flags = .punctuation
    case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol: flags = .symbol
    case .control, .format, .privateUse, .surrogate: flags = .control
    case .unassigned: flags = .undefined
    @unknown default: flags = .undefined
    }
    if isWhitespace(value) { flags.insert(.whitespace) }
    return flags
  }

  /// Unicode's White_Space property (the set llama.cpp's `\s` uses).
  private static func isWhitespace(_ value: UInt32) -> Bool {
    switch value {
    case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F,
      0x3000:
      return true
    default:
      return false
    }
  }
}
