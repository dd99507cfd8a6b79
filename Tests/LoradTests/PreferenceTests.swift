import Testing

@testable import lorad

/// Each preference on examples, and the simulated user's veto of degenerate answers.
@Suite struct PreferenceTests {
  @Test func shortMeansEndedOnItsOwn() {
    #expect(Preference.short.likes("Canberra.", finish: "stop"))
    #expect(!Preference.short.likes("Canberra is the capital and", finish: "length"))
  }

  @Test func fewCommasCountsCommas() {
    #expect(Preference.fewCommas.likes("One, two, three.", finish: "length"))
    #expect(!Preference.fewCommas.likes("One, two, three, four.", finish: "stop"))
    #expect(Preference.fewCommas.likes("No commas at all", finish: "stop"))
    #expect(Preference.oneComma.likes("One, two.", finish: "length"))
    #expect(!Preference.oneComma.likes("One, two, three.", finish: "stop"))
  }

  @Test func numberAndList() {
    #expect(Preference.number.likes("It is 8,849 m high.", finish: "stop"))
    #expect(!Preference.number.likes("It is very high.", finish: "stop"))
    #expect(Preference.list.likes("Try these:\n1. Sleep\n2. Eat", finish: "stop"))
    #expect(Preference.list.likes("- one\n- two", finish: "stop"))
    #expect(Preference.list.likes("Steps:\n  12) boil", finish: "stop"))
    #expect(!Preference.list.likes("In 1995. Then more.", finish: "stop"))
    #expect(!Preference.list.likes("A -dash and 3.5 percent", finish: "stop"))
  }

  @Test func namesParseAsOnTheCommandLine() {
    #expect(Preference(rawValue: "few-commas") == .fewCommas)
    #expect(Preference(rawValue: "one-comma") == .oneComma)
    #expect(Preference.allCases.count == 5)
  }

  @Test func degenerateAnswersGetThumbsDownWhateverTheTaste() {
    let user = SimulatedUser(preference: .number)
    let collapse = String(repeating: "1. ", count: 20)
    let v = user.rate(collapse, finish: "length")
    #expect(v == .init(up: false, degenerate: true, liked: true))
    #expect(user.rate("There are 8 planets.", finish: "stop") == .init(up: true, degenerate: false, liked: true))
    #expect(user.rate("There are many planets.", finish: "stop").up == false)
  }
}
