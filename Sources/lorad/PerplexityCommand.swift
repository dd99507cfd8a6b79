import ArgumentParser
import Foundation
import Model

struct PerplexityCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "perplexity",
    abstract: "Perplexity of the model on a text file, computed as llama.cpp's llama-perplexity does.",
    discussion: """
      The text is cut into non-overlapping chunks of --ctx tokens; only the second half of each
      chunk is scored. Prints the running estimate per chunk, then `PPL = X` as the last line.
      """)

  @OptionGroup var modelOptions: ModelOptions
  @OptionGroup var kvOptions: KVOptions
  @OptionGroup var adapterOptions: AdapterOptions
  @Option(name: .customLong("batch"), help: "Rows per forward step.")
  var batch: Int = 512
  @Argument(help: "A UTF-8 text file.")
  var file: String

  func validate() throws {
    guard batch >= 1 && batch <= 8192 else { throw ValidationError("--batch must be in 1...8192") }
  }

  func run() throws {
    guard let d = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
    guard let text = String(data: d, encoding: .utf8) else { throw ValidationError("\(file) is not valid UTF-8") }
    let m = try modelOptions.load()
    let n = modelOptions.ctx
    let ctx = LlamaContext(
      model: m.model, threads: modelOptions.threads, maxBatch: min(batch, n), maxContext: n,
      kvType: kvOptions.kvType)
    let tokens = m.tokenizer.encode(text, addSpecial: true, parseSpecial: false)
    let (mix, leases) = try adapterOptions.resolve(config: m.model.config)
    defer { leases.forEach { $0.release() } }
    let bos: Int32? = m.addsBOS ? m.tokenizer.bosID : nil
    printError("\(file): \(tokens.count) tokens, \(tokens.count / n) chunks of \(n)")
    let t0 = Date()
    let r = try Perplexity.run(context: ctx, tokens: tokens, ctx: n, bos: bos, adapters: mix) { p in
      FileHandle.standardOutput.write(String(format: "[%d]%.4f,", p.chunk, p.ppl).data(using: .utf8)!)
    }
    print("")
    printError(String(format: "%d tokens scored in %.2f s", r.scored, Date().timeIntervalSince(t0)))
    print(String(format: "Final estimate: PPL = %.4f +/- %.5f", r.ppl, r.pplError))
    print(String(format: "PPL = %.4f", r.ppl))
  }
}
