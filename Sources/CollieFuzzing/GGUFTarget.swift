import CollieIO
import Foundation

extension FuzzEntryPoints {
    /// A whole GGUF file opened as a model is (header, metadata, tensor infos, alignment, offsets), then every tensor of
    /// a type Collie dequantizes read as floats. `GGUFFile` maps files, so the input goes through a scratch file.
    static func gguf(_ input: [UInt8]) throws {
        let file = try GGUFFile(url: try ScratchFile.write(input, as: "model.gguf"))
        for info in file.tensors where GGMLDequantization.supports(info.type) {
            _ = try file.floats(of: info)
        }
    }
}
