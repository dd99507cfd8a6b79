import Testing

@testable import Learning

/// The degeneracy detector on hand-picked answers: the collapses a thumbs-optimising learner
/// produces are caught, ordinary answers (lists and numbers included) are not.
@Suite struct DegeneracyTests {
  static let ordinary = [
    "The capital of Australia is Canberra. It was chosen as a compromise between Sydney and Melbourne.",
    "To boil an egg, place it in a pot of cold water, bring the water to a boil, then simmer for 9 minutes.",
    "Here are three tips:\n1. Go to bed at the same time.\n2. Avoid screens late.\n3. Keep the room cool.",
    "Yes.",
    "42",
    "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen. The light is "
      + "absorbed by chlorophyll in the leaves, and the energy is stored in glucose that the plant uses to grow.",
    "- apples\n- pears\n- plums\n- cherries",
  ]

  @Test func ordinaryAnswersAreNotDegenerate() {
    for text in Self.ordinary {
      let d = Degeneracy(text)
      #expect(!d.isDegenerate, "\(text) judged \(d.reason ?? "")")
    }
  }

  @Test func numberedRunsAreDegenerate() {
    let d = Degeneracy("1. 1. 1. 1. 1. 1. 1. 1. 1. 1. 1. 1. 1. 1. 1. 1.")
    #expect(d.isDegenerate)
    #expect(d.uniqueWordShare < 0.1)
  }

  @Test func aRepeatedPhraseIsDegenerate() {
    let text = "I love the sea. I love the sea. I love the sea. I love the sea. I love the sea."
    let d = Degeneracy(text)
    #expect(d.isDegenerate)
    #expect(d.maxTrigramCount >= 4)
    #expect(d.copiedShare > 0.7)
  }

  @Test func aLongerLoopWithVariedWordsIsDegenerate() {
    // 16 distinct words repeated three times: the unique share is 1/3, each trigram occurs 3 times.
    let phrase = "the answer depends on what you want to do with the garden in spring and summer. "
    let d = Degeneracy(String(repeating: phrase, count: 3))
    #expect(d.isDegenerate)
    #expect(d.copiedShare > 0.6)
  }

  @Test func textCopyingItselfWithoutWordsIsDegenerate() {
    let d = Degeneracy("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!")
    #expect(d.isDegenerate)
    #expect(Degeneracy("").isDegenerate)
    #expect(Degeneracy("  \n ").reason == "no words")
    let runs = Degeneracy("Sure: abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc")
    #expect(runs.reason == "text copying itself")
  }

  @Test func copiedShareIsAnLZ77Parse() {
    let s = Array("abcdefghijklmnop-abcdefghijklmnop".unicodeScalars)
    // The second half (16 characters) copies the first; the dash and the first half are literals.
    #expect(Degeneracy.copiedShare(s, minCopy: 12) == 16.0 / 33.0)
    #expect(Degeneracy.copiedShare(s, minCopy: 17) == 0)
    #expect(Degeneracy.copiedShare(Array("short".unicodeScalars), minCopy: 12) == 0)
  }

  @Test func limitsAreSettings() {
    var strict = Degeneracy.Limits()
    strict.minUniqueWordShare = 0.95
    let text = "a cat and a dog and a bird and a fish sat on a mat"
    #expect(!Degeneracy(text).isDegenerate)
    #expect(Degeneracy(text, limits: strict).reason == "few distinct words")
  }
}
