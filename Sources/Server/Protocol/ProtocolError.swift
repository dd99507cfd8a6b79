/// The `code` of an error reply, exactly as DESIGN.md's wire protocol spells it.
public enum ErrorCode: String, Sendable, Equatable, CaseIterable {
  case badRequest = "bad_request"
  case unknownOp = "unknown_op"
  case adapterNotFound = "adapter_not_found"
  case unknownRequest = "unknown_request"
  case tooLarge = "too_large"
  case contextOverflow = "context_overflow"
  case overloaded = "overloaded"
  case unauthorized = "unauthorized"
  case `internal` = "internal"
}

/// A request the server answers with an error line. `id` is the client's id when it could be
/// read from the line (so the client can match the error to its request), nil otherwise.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
  public var id: String?
  public var code: ErrorCode
  public var message: String

  public init(id: String?, code: ErrorCode, message: String) {
    self.id = id
    self.code = code
    self.message = message
  }

  public var reply: Reply { .error(id: id, code: code, message: message) }
  public var description: String { "\(code.rawValue): \(message)" }
}
