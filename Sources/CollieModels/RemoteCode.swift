import CollieIO
import Foundation

/// The remote code of a `trust_remote_code` model folder (ChatGLM, InternLM, MOSS): the `auto_map` of its
/// config.json, which names the Python modules `transformers` loads the model's classes from, and those modules
/// (`*.py` beside it). A folder Collie saves from such a source carries both, so `AutoModelForCausalLM` and
/// `AutoTokenizer` with `trust_remote_code=True` load it as they loaded the source.
public enum RemoteCode {
    /// The most bytes one Python file of a source folder may have.
    public static let fileLimit = 16 << 20

    /// Copies the remote code of the model folder `source` into `folder`, which holds a config.json Collie wrote: the
    /// source config.json's `auto_map` is added to it, and every top-level `*.py` file of `source` is copied (a
    /// module's relative imports must be there too, as `transformers` checks them). Nothing happens when neither the
    /// source's config.json nor its tokenizer_config.json has an `auto_map`.
    /// - Throws: `CheckpointError` naming the file that cannot be read or is not what it should be.
    public static func copy(from source: URL, to folder: URL) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isFolder), isFolder.boolValue else { return }
        let autoMap = try Self.autoMap(in: source.appendingPathComponent("config.json"))
        let tokenizerAutoMap = try Self.autoMap(in: source.appendingPathComponent("tokenizer_config.json"))
        guard autoMap != nil || tokenizerAutoMap != nil else { return }
        let written = folder.appendingPathComponent("config.json")
        if let autoMap, FileManager.default.fileExists(atPath: written.path) {
            var text = try InputFile.contents(of: written)
            // After the object's last field: `{ …, "last" : 1, "auto_map" : {…} }`.
            let whitespace = Set(" \n\t\r".utf8)
            guard let end = text.lastIndex(of: UInt8(ascii: "}")),
                  let last = text[..<end].lastIndex(where: { !whitespace.contains($0) }), text[last] != UInt8(ascii: "{") else {
                throw CheckpointError(file: written.path, "is not a JSON object with fields")
            }
            let value = try JSONSerialization.data(withJSONObject: autoMap, options: [.sortedKeys])
            text.insert(contentsOf: Data(",\n  \"auto_map\" : ".utf8) + value, at: last + 1)
            try AtomicFile.write(text, to: written)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: source.path).filter { $0.hasSuffix(".py") }.sorted()
        for name in names {
            let url = source.appendingPathComponent(name)
            try AtomicFile.write(InputFile.contents(of: url, limit: fileLimit), to: folder.appendingPathComponent(name))
        }
    }

    /// The `auto_map` object of a JSON file, nil when the file or the field is absent.
    static func autoMap(in url: URL) throws -> [String: Any]? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let data = try InputFile.contents(of: url)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError(file: url.path, "is not a JSON object")
        }
        guard let value = object["auto_map"] else { return nil }
        guard let map = value as? [String: Any] else { throw CheckpointError(file: url.path, "auto_map is not an object") }
        return map
    }
}
