import ArgumentParser

@main
struct Lorad: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "lorad",
    abstract: "Serve one frozen 4-bit LLM with many LoRA adapters, and learn from feedback.",
    discussion: """
      The default model is models/SmolLM2-135M-Instruct.Q4_1.gguf (fetch it with `make model`).
      Adapters: --adapter on generate, perplexity and bench; `lorad adapters` manages them.
      `lorad serve` runs the daemon and learns from the feedback it gets; `lorad log` reads its
      feedback log (STATE/lorad.db); `lorad simulate` shows the learning with a simulated user.
      """,
    subcommands: [
      ServeCommand.self, GenerateCommand.self, TokenizeCommand.self, PerplexityCommand.self, BenchCommand.self,
      AdaptersCommand.self, AskCommand.self, FeedbackCommand.self, LoadtestCommand.self, LogCommand.self,
      SimulateCommand.self,
    ])
}
