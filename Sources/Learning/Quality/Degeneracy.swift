/// Whether a generated answer is degenerate — empty, incoherent or repetitive — judged from its
/// text alone, the way a reader would notice: few distinct words (`1. 1. 1. …`), one word
/// sequence repeated, or text that compresses to little (long stretches that copy earlier text).
/// A pure function of the text, cheap on answers of a few hundred characters (quadratic in the
/// characters, so meant for answers, not documents). Used by `lorad simulate`'s simulated user,
/// who thumbs down such an answer whatever its taste, and for its "degenerate share" metric.
public struct Degeneracy: Sendable, Equatable {
  /// Distinct words / words (lower-cased, split on whitespace); 1 with fewer than `minWords`.
  public var uniqueWordShare: Double
  /// The most occurrences of any one word trigram.
  public var maxTrigramCount: Int
  /// Share of the characters covered by copies (of at least `minCopy` characters) of text that
  /// appeared earlier in the answer: an LZ77-style measure of compressibility, 0 for text that
  /// never repeats itself, near 1 for one phrase over and over.
  public var copiedShare: Double
  /// Why the answer counts as degenerate; nil when it does not.
  public var reason: String?

  /// A degenerate answer?
  public var isDegenerate: Bool { reason != nil }

  /// Thresholds. The defaults were set on SmolLM2-135M-Instruct's answers at temperature 0.8
  /// (bench/learn): they flag a few percent of the base model's answers — the loops it falls
  /// into on its own — and the collapsed outputs a thumbs-optimising learner produces.
  public struct Limits: Sendable, Equatable {
    /// Word statistics apply from this many words on.
    public var minWords = 12
    /// Below this share of distinct words: repetitive.
    public var minUniqueWordShare = 0.4
    /// A word trigram occurring this often or more: repetitive.
    public var maxTrigramRepeats = 4
    /// Shortest copy counted by `copiedShare`, in characters.
    public var minCopy = 12
    /// Above this share of copied characters: repetitive (checked from `minCopy * 4` characters on).
    public var maxCopiedShare = 0.5
    public init() {}
  }

  /// Measures `text` and judges it against `limits`.
  public init(_ text: String, limits: Limits = Limits()) {
    let words = text.lowercased().split(whereSeparator: { $0.isWhitespace || $0.isNewline }).map(String.init)
    let chars = Array(text.unicodeScalars)
    uniqueWordShare = words.count < limits.minWords ? 1 : Double(Set(words).count) / Double(words.count)
    var trigrams: [String: Int] = [:]
    if words.count >= 3 {
      for i in 0...(words.count - 3) { trigrams[words[i] + " " + words[i + 1] + " " + words[i + 2], default: 0] += 1 }
    }
    maxTrigramCount = trigrams.values.max() ?? 0
    copiedShare = Self.copiedShare(chars, minCopy: limits.minCopy)

    if !text.unicodeScalars.contains(where: { $0.properties.isAlphabetic || ("0"..."9").contains($0) }) {
      reason = "no words"
    } else if words.count >= limits.minWords && uniqueWordShare < limits.minUniqueWordShare {
      reason = "few distinct words"
    } else if maxTrigramCount >= limits.maxTrigramRepeats {
      reason = "a repeated phrase"
    } else if chars.count >= limits.minCopy * 4 && copiedShare > limits.maxCopiedShare {
      reason = "text copying itself"
    } else {
      reason = nil
    }
  }

  /// Greedy LZ77 parse: at each position, the longest earlier match (overlaps allowed, as in
  /// LZ77); matches of at least `minCopy` count as copied and are skipped over.
  static func copiedShare(_ s: [Unicode.Scalar], minCopy: Int) -> Double {
    guard s.count > minCopy else { return 0 }
    var copied = 0
    var i = 0
    while i < s.count {
      var best = 0
      var j = 0
      while j < i {
        var k = 0
        while i + k < s.count && s[j + k] == s[i + k] { k += 1 }
        if k > best { best = k }
        j += 1
      }
      if best >= minCopy {
        copied += best
        i += best
      } else {
        i += 1
      }
    }
    return Double(copied) / Double(s.count)
  }
}
