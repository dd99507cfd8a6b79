import Foundation
import Model

/// The one way in: reads an adapter in whichever format `path` holds.
public enum LoRALoader {
  /// Loads the adapter at `path` and fits it to the base model described by `config`:
  /// - a PEFT directory (`adapter_config.json` + `adapter_model.safetensors`), or a path to one
  ///   of those two files;
  /// - a directory holding `adapter.gguf`;
  /// - a GGUF LoRA file (any name).
  /// `name` defaults to the directory's name (or the file's, without `.gguf`).
  /// Throws `AdapterError` naming the file and tensor when anything does not fit.
  public static func load(path: String, config: LlamaConfig, name: String? = nil) throws -> LoRAWeights {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
      throw AdapterError.missingFile(path: path)
    }
    let url = URL(fileURLWithPath: path).standardizedFileURL
    if isDir.boolValue {
      let n = name ?? url.lastPathComponent
      let fm = FileManager.default
      if fm.fileExists(atPath: path + "/" + PEFTAdapter.configFile) {
        return try PEFTAdapter.load(directory: path, config: config, name: n)
      }
      if fm.fileExists(atPath: path + "/" + GGUFLoRA.fileName) {
        return try GGUFLoRA.load(path: path + "/" + GGUFLoRA.fileName, config: config, name: n)
      }
      if fm.fileExists(atPath: path + "/" + PEFTAdapter.weightsFile) {
        throw AdapterError.missingFile(path: path + "/" + PEFTAdapter.configFile)
      }
      throw AdapterError.notAnAdapter(
        path: path,
        reason:
          "the directory holds neither \(PEFTAdapter.configFile) + \(PEFTAdapter.weightsFile) (PEFT) nor \(GGUFLoRA.fileName)"
      )
    }
    let file = url.lastPathComponent
    let dir = url.deletingLastPathComponent()
    if file == PEFTAdapter.configFile || file == PEFTAdapter.weightsFile {
      return try PEFTAdapter.load(directory: dir.path, config: config, name: name ?? dir.lastPathComponent)
    }
    if file.hasSuffix(".gguf") || (try? isGGUF(path)) == true {
      let stem = file.hasSuffix(".gguf") ? String(file.dropLast(5)) : file
      let n = name ?? (file == GGUFLoRA.fileName ? dir.lastPathComponent : stem)
      return try GGUFLoRA.load(path: path, config: config, name: n)
    }
    throw AdapterError.notAnAdapter(
      path: path, reason: "expected a PEFT directory, a directory with \(GGUFLoRA.fileName), or a .gguf LoRA file")
  }

  /// Whether the file starts with the GGUF magic.
  static func isGGUF(_ path: String) throws -> Bool {
    let f = try MappedFile(path: path)
    guard f.size >= 4 else { return false }
    return f.bytes.loadUnaligned(as: UInt32.self) == UInt32(0x4655_4747).littleEndian
  }
}
