import ArgumentParser
import Foundation
import Model

struct GenerateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "generate",
    abstract: "Generate text from a prompt, streaming tokens to stdout.",
    discussion: """
      Without --raw the prompt becomes the user message of the model's chat template (ChatML for
      the default model) and the assistant's answer is printed. With --raw the prompt is fed as is
      and only the completion is printed. Timings go to stderr with --verbose.
      """)

  @OptionGroup var modelOptions: ModelOptions
  @OptionGroup var kvOptions: KVOptions
  @OptionGroup var sampling: SamplingFlags
  @OptionGroup var adapterOptions: AdapterOptions

  @Flag(name: .long, help: "Use the prompt as is: no chat template.")
  var raw = false
  @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.")
  var maxTokens: Int = 256
  @Option(name: .long, help: "Stop when this text appears (repeatable); it is not printed.")
  var stop: [String] = []
  @Option(name: .long, help: "System message for the chat template (default: the template's own).")
  var system: String?
  @Flag(name: .long, help: "Print prompt/decode speed to stderr.")
  var verbose = false
  @Argument(help: "The prompt.")
  var prompt: String

  func validate() throws {
    guard maxTokens >= 1 && maxTokens <= 1_000_000 else { throw ValidationError("--max-tokens must be at least 1") }
  }

  func run() throws {
    let m = try modelOptions.load()
    let ctx = LlamaContext(
      model: m.model, threads: modelOptions.threads, maxBatch: Generator.defaultPrefillChunk,
      maxContext: modelOptions.ctx, maxLogitRows: 1, kvType: kvOptions.kvType)
    let gen = Generator(context: ctx, tokenizer: m.tokenizer)
    let (mix, leases) = try adapterOptions.resolve(config: m.model.config)
    defer { leases.forEach { $0.release() } }
    let ids: [Int32]
    if raw {
      ids = m.tokenizer.encode(prompt, addSpecial: true, parseSpecial: true)
    } else {
      var msgs: [ChatMessage] = []
      if let system { msgs.append(ChatMessage(role: "system", content: system)) }
      msgs.append(ChatMessage(role: "user", content: prompt))
      ids = try m.chatPrompt(msgs)
    }
    let out = FileHandle.standardOutput
    let r = try gen.generate(prompt: ids, maxTokens: maxTokens, sampling: sampling.options, stop: stop, adapters: mix) {
      text in
      out.write(text.data(using: .utf8)!)
      return true
    }
    out.write("\n".data(using: .utf8)!)
    if verbose {
      let pp = Double(r.promptTokens) / max(r.prefillSeconds, 1e-9)
      let tg = Double(r.tokens.count) / max(r.decodeSeconds, 1e-9)
      printError(
        String(
          format: "prompt %d tokens, %.1f t/s; generated %d tokens, %.1f t/s; finish: %@",
          r.promptTokens, pp, r.tokens.count, tg, r.finish.rawValue))
    }
  }
}
