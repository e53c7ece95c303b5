import CollieIO
import Foundation

extension FuzzEntryPoints {
    /// A whole safetensors file (8-byte header length, JSON header, data) opened as checkpoints are, then every
    /// tensor read. `SafeTensorsFile` maps files, so the input goes through a scratch file.
    static func safetensorsHeader(_ input: [UInt8]) throws {
        let file = try SafeTensorsFile(url: try ScratchFile.write(input, as: "model.safetensors"))
        var firstError: (any Error)?
        for name in file.names {
            do { _ = try file.tensor(name) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }
}
