import ArgumentParser
import Foundation
import Model

struct TokenizeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tokenize",
    abstract: "Print the token ids of a text as one JSON array.",
    discussion:
      "Special tokens written in the text (e.g. <|im_start|>) are recognized, as llama.cpp does. BOS is added only when the model asks for it."
  )

  @OptionGroup var modelOptions: ModelOptions
  @Option(name: .long, help: "Read the text from this file instead of the argument.")
  var file: String?
  @Flag(name: .customLong("no-special"), help: "Treat special-token text as plain text.")
  var noSpecial = false
  @Argument(help: "The text (when --file is not given).")
  var text: String?

  func validate() throws {
    if (file == nil) == (text == nil) { throw ValidationError("give either TEXT or --file FILE") }
  }

  func run() throws {
    let s: String
    if let file {
      guard let d = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
      guard let t = String(data: d, encoding: .utf8) else { throw ValidationError("\(file) is not valid UTF-8") }
      s = t
    } else {
      s = text!
    }
    let tok = try LoadedModel.tokenizerOnly(path: try modelOptions.resolvedModelPath())
    let ids = tok.encode(s, addSpecial: true, parseSpecial: !noSpecial)
    print("[" + ids.map(String.init).joined(separator: ",") + "]")
  }
}
