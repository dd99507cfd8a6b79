import Foundation
import Model

extension LoRAModule {
  /// The short name the CLI uses: q, k, v, o, gate, up, down.
  public var shortName: String { String(rawValue.dropLast("_proj".count)) }

  /// Modules from a comma list of short or PEFT names (`q,v`, `q_proj,gate`), or `all`, in
  /// `allCases` order without repeats. Throws `RegistryError.badArgument` naming the stranger.
  public static func parseList(_ text: String) throws -> [LoRAModule] {
    let words = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    if words == ["all"] { return allCases }
    var picked = Set<LoRAModule>()
    for w in words {
      guard let m = allCases.first(where: { $0.shortName == w || $0.rawValue == w }) else {
        throw RegistryError.badArgument(
          "unknown target module '\(w)'; use \(allCases.map(\.shortName).joined(separator: ", ")) or all")
      }
      picked.insert(m)
    }
    guard !picked.isEmpty else { throw RegistryError.badArgument("give at least one target module, e.g. q,v") }
    return allCases.filter(picked.contains)
  }
}
