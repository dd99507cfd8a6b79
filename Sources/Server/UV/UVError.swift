import CLibUV

/// A negative libuv return code, with the call that returned it.
public struct UVError: Error, Equatable, CustomStringConvertible {
  public let code: Int32
  public let operation: String

  public init(code: Int32, operation: String) {
    self.code = code
    self.operation = operation
  }

  /// libuv's name for the code, e.g. `EADDRINUSE`.
  public var name: String { String(cString: uv_err_name(code)) }
  public var description: String { "\(operation): \(String(cString: uv_strerror(code))) (\(name))" }
}

/// Throws `UVError` for a negative libuv return code; passes others through.
@discardableResult
func uvCheck(_ rc: Int32, _ operation: @autoclosure () -> String) throws(UVError) -> Int32 {
  if rc < 0 { throw UVError(code: rc, operation: operation()) }
  return rc
}

/// libuv's handle "subclasses" share `uv_handle_t`'s layout as their first fields.
@inline(__always)
func asHandle<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
  UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_handle_t.self)
}

@inline(__always)
func asStream<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_stream_t> {
  UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_stream_t.self)
}

let uvEOF = Int32(UV_EOF.rawValue)
let uvECANCELED = Int32(UV_ECANCELED.rawValue)
