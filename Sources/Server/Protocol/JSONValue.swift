/// A parsed JSON value. Integers written without fraction or exponent that fit in 64 bits stay
/// exact (`integer`); every other number is a `double`. Objects keep their keys' order.
public enum JSONValue: Sendable, Equatable {
  case null
  case bool(Bool)
  case integer(Int64)
  case double(Double)
  case string(String)
  case array([JSONValue])
  case object(JSONObject)

  /// The JSON type's name, for error messages ("expected a string, got an array").
  public var typeName: String {
    switch self {
    case .null: return "null"
    case .bool: return "a boolean"
    case .integer, .double: return "a number"
    case .string: return "a string"
    case .array: return "an array"
    case .object: return "an object"
    }
  }
}

/// A JSON object with its keys in the order they were written (or inserted).
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
  /// Keys in order; each appears once.
  public private(set) var keys: [String] = []
  private var values: [String: JSONValue] = [:]

  public init() {}

  public init(dictionaryLiteral elements: (String, JSONValue)...) {
    for (k, v) in elements { self[k] = v }
  }

  public subscript(key: String) -> JSONValue? {
    get { values[key] }
    set {
      if let newValue {
        if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
      } else if values.removeValue(forKey: key) != nil {
        keys.removeAll { $0 == key }
      }
    }
  }

  public var count: Int { keys.count }

  /// The pairs in key order.
  public var pairs: [(key: String, value: JSONValue)] { keys.map { ($0, values[$0]!) } }
}
