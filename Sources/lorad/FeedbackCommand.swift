import ArgumentParser
import Foundation
import Server

/// `lorad feedback`: thumbs up or down on a finished generation.
struct FeedbackCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "feedback",
    abstract: "Rate a generation of a running lorad daemon: up or down, with an optional note.",
    discussion: """
      REQUEST is the id `lorad ask` printed on stderr (r-…), the `request` of a start or done \
      event. The rating teaches the adapter that answered. With --keys on the daemon, only the \
      key that made the request may rate it. Example: lorad feedback r-12 down --note "wrong city"
      """)

  enum Rating: String, ExpressibleByArgument, CaseIterable {
    case up, down
  }

  @Argument(help: "The request id (r-…).")
  var request: String
  @Argument(help: "up or down.")
  var rating: Rating
  @Option(name: .long, help: "Why, in a few words.")
  var note: String?
  @OptionGroup var connection: ConnectOptions

  func run() throws {
    let client = try connection.open()
    var r: JSONObject = [
      "op": .string("feedback"), "id": .string("feedback"), "request": .string(request),
      "rating": .string(rating.rawValue),
    ]
    if let note { r["note"] = .string(note) }
    try client.call(r)
    print("\(request): rated \(rating.rawValue)")
  }
}
