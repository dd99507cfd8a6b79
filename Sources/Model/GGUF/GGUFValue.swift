/// One metadata value of a GGUF file. Integers of every width are widened to Int64/UInt64,
/// floats to Double; `type` keeps the on-disk type for writers and for `lorad` tools.
public enum GGUFValue: Sendable, Equatable {
  case uint(UInt64, GGUFValueType)
  case int(Int64, GGUFValueType)
  case float(Double, GGUFValueType)
  case bool(Bool)
  case string(String)
  case array([GGUFValue], GGUFValueType)

  public var int: Int? {
    switch self {
    case .uint(let v, _): return v <= UInt64(Int.max) ? Int(v) : nil
    case .int(let v, _): return Int(v)
    default: return nil
    }
  }
  public var double: Double? {
    switch self {
    case .float(let v, _): return v
    case .uint(let v, _): return Double(v)
    case .int(let v, _): return Double(v)
    default: return nil
    }
  }
  public var string: String? { if case .string(let s) = self { return s } else { return nil } }
  public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
  public var array: [GGUFValue]? { if case .array(let a, _) = self { return a } else { return nil } }
}

/// GGUF metadata value types, numbered as in the GGUF specification.
public enum GGUFValueType: UInt32, Sendable {
  case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
  case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

  /// Smallest number of bytes one value of this type takes on disk (for count sanity checks).
  var minBytes: Int {
    switch self {
    case .uint8, .int8, .bool: return 1
    case .uint16, .int16: return 2
    case .uint32, .int32, .float32: return 4
    case .uint64, .int64, .float64, .string: return 8
    case .array: return 12
    }
  }
}
