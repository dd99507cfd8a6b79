import Foundation
import Testing

@testable import Model

@Suite struct SamplerTests {
  func logits(_ v: [Float]) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: v.count)
    p.initialize(from: v, count: v.count)
    return p
  }

  @Test func greedyIsArgmax() {
    let s = Sampler(vocabSize: 5, options: .greedy)
    let l = logits([0.1, 3, -1, 2.9, 0])
    defer { l.deallocate() }
    #expect(s.sample(l) == 1)
  }

  @Test func topKOneIsGreedyWhateverTheTemperature() {
    var o = SamplingOptions()
    o.temperature = 5
    o.topK = 1
    let s = Sampler(vocabSize: 5, options: o)
    for _ in 0..<50 {
      let l = logits([0.1, 3, -1, 2.9, 0])
      #expect(s.sample(l) == 1)
      l.deallocate()
    }
  }

  @Test func seedReproducesAndFrequenciesFollowSoftmax() {
    var o = SamplingOptions()
    o.temperature = 1
    o.topK = 0
    o.topP = 1
    o.minP = 0
    o.seed = 7
    let base: [Float] = [0, log(2), log(3), log(4)]  // probabilities 0.1 0.2 0.3 0.4
    let a = Sampler(vocabSize: 4, options: o)
    let b = Sampler(vocabSize: 4, options: o)
    var counts = [0, 0, 0, 0]
    for _ in 0..<20000 {
      let l1 = logits(base), l2 = logits(base)
      let x = a.sample(l1), y = b.sample(l2)
      #expect(x == y)
      counts[Int(x)] += 1
      l1.deallocate()
      l2.deallocate()
    }
    for i in 0..<4 {
      let f = Double(counts[i]) / 20000
      #expect(abs(f - Double(i + 1) / 10) < 0.015, "token \(i): \(f)")
    }
  }

  @Test func topPAndMinPCutTheTail() {
    var o = SamplingOptions()
    o.temperature = 1
    o.topK = 0
    o.topP = 0.5  // 0.4 + 0.3 reaches 0.5: only tokens 3 and 2 remain
    o.minP = 0
    var s = Sampler(vocabSize: 4, options: o)
    let base: [Float] = [0, log(2), log(3), log(4)]
    for _ in 0..<2000 {
      let l = logits(base)
      let t = s.sample(l)
      #expect(t == 3 || t == 2)
      l.deallocate()
    }
    o.topP = 1
    o.minP = 0.7  // floor 0.28: tokens 3 (0.4) and 2 (0.3)
    s = Sampler(vocabSize: 4, options: o)
    for _ in 0..<2000 {
      let l = logits(base)
      let t = s.sample(l)
      #expect(t == 3 || t == 2)
      l.deallocate()
    }
  }

  @Test func repetitionPenaltyAsLlamaCpp() {
    var o = SamplingOptions.greedy
    o.repeatPenalty = 2
    let s = Sampler(vocabSize: 3, options: o)
    s.accept(0)
    let l = logits([3, 2, -1])
    defer { l.deallocate() }
    #expect(s.sample(l) == 1)  // 3 / 2 = 1.5 < 2
    #expect(l[0] == 1.5)
  }

  @Test func invalidOptionsAreRefused() {
    var o = SamplingOptions()
    o.temperature = -1
    #expect(throws: ModelError.self) { try o.validate() }
    o = SamplingOptions()
    o.topP = 0
    #expect(throws: ModelError.self) { try o.validate() }
    o = SamplingOptions()
    o.temperature = .nan
    #expect(throws: ModelError.self) { try o.validate() }
  }
}

@Suite struct ChatTemplateTests {
  static let smol = """
    {% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
    You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
    ' }}{% endif %}{{'<|im_start|>' + message['role'] + '
    ' + message['content'] + '<|im_end|>' + '
    '}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
    ' }}{% endif %}
    """

  @Test func chatMLWithTheTemplatesDefaultSystem() throws {
    let t = try ChatTemplate(template: Self.smol)
    #expect(t == .chatML(defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
    #expect(
      t.render([ChatMessage(role: "user", content: "Hi")])
        == "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    #expect(
      t.render(
        [ChatMessage(role: "system", content: "S"), ChatMessage(role: "user", content: "Hi")],
        addGenerationPrompt: false)
        == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
  }

  @Test func llama3IsRecognized() throws {
    let t = try ChatTemplate(
      template:
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}"
    )
    #expect(t == .llama3)
    #expect(
      t.render([ChatMessage(role: "user", content: " Hi ")])
        == "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
  }

  @Test func unknownTemplateIsAnError() {
    #expect(throws: ModelError.self) { _ = try ChatTemplate(template: "[INST] {{ message['content'] }} [/INST]") }
  }
}

@Suite struct StopMatcherTests {
  @Test func holdsBackPrefixesAndStopsAtTheString() {
    var m = StopMatcher(["</end>"])
    var r = m.push("Hello </e")
    #expect(r.emit == "Hello " && !r.stopped)
    r = m.push("nd> more")
    #expect(r.emit == "" && r.stopped)
    var n = StopMatcher(["</end>"])
    r = n.push("a </")
    #expect(r.emit == "a ")
    r = n.push("b")
    #expect(r.emit == "</b" && !r.stopped)
    #expect(n.flush() == "")
  }

  @Test func noStopsPassesThrough() {
    var m = StopMatcher([])
    #expect(m.push("abc").emit == "abc")
  }
}
