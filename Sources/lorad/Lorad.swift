import ArgumentParser

@main
struct Lorad: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lorad",
    abstract: "Serve one frozen 4-bit LLM with many LoRA adapters, and learn from feedback.",
    discussion: """
      The default model is models/SmolLM2-135M-Instruct.Q4_1.gguf (fetch it with `make model`).
      Adapters: --adapter on generate, perplexity and bench; `lorad adapters` manages them.
      `lorad log` reads the feedback log (STATE/lorad.db). The daemon (`lorad serve`) and online
      learning arrive with later issues; see README.
      """,
    subcommands: [
      GenerateCommand.self, TokenizeCommand.self, PerplexityCommand.self, BenchCommand.self, AdaptersCommand.self,
      LogCommand.self,
    ])
}
