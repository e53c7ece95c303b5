import CollieEngine
import Foundation

/// The weights of a Hugging Face model folder: `model.safetensors`, or shards listed in
/// `model.safetensors.index.json`.
public final class CheckpointFolder {
    /// The folder.
    public let url: URL
    /// Which file holds each tensor.
    private let files: [String: SafeTensorsFile]

    /// Opens every weight file of the folder, validating each header.
    public init(url: URL) throws {
        self.url = url
        try InputFile.checkFolder(url)
        let index = url.appendingPathComponent("model.safetensors.index.json")
        let single = url.appendingPathComponent("model.safetensors")
        var files: [String: SafeTensorsFile] = [:]
        if FileManager.default.fileExists(atPath: index.path) {
            struct Index: Decodable {
                let weightMap: [String: String]
                enum CodingKeys: String, CodingKey { case weightMap = "weight_map" }
            }
            let decoded: Index
            do {
                decoded = try JSONDecoder().decode(Index.self, from: InputFile.contents(of: index))
            } catch let error as CheckpointError {
                throw error
            } catch {
                throw CheckpointError(file: index.path, "not a valid index (\(error))")
            }
            var opened: [String: SafeTensorsFile] = [:]
            for (name, file) in decoded.weightMap {
                let shard = try opened[file]
                    ?? SafeTensorsFile(url: InputFile.file(named: file, in: url, listedIn: index.path))
                opened[file] = shard
                guard shard.entries[name] != nil else {
                    throw CheckpointError(file: index.path, "lists '\(name)' in \(file), which does not contain it")
                }
                files[name] = shard
            }
        } else if FileManager.default.fileExists(atPath: single.path) {
            let file = try SafeTensorsFile(url: single)
            for name in file.entries.keys { files[name] = file }
        } else {
            throw CheckpointError(file: url.path, "no model.safetensors or model.safetensors.index.json in the folder")
        }
        self.files = files
    }

    /// Every tensor name in the checkpoint.
    public var names: Set<String> { Set(files.keys) }

    /// The path of the file that holds tensor `name` (the folder's path when no file does).
    public func path(of name: String) -> String { files[name]?.path ?? url.path }

    /// The header entry (dtype, shape) of tensor `name`, read without mapping its data.
    public func entry(_ name: String) -> SafeTensorsEntry? { files[name]?.entries[name] }

    /// The stored tensor `name` (in its stored dtype).
    public func tensor(_ name: String) throws -> Tensor {
        guard let file = files[name] else { throw CheckpointError(file: url.path, "no tensor named '\(name)'") }
        return try file.tensor(name)
    }
}
