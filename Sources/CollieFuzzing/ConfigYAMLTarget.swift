import CollieTraining
import Foundation

extension FuzzEntryPoints {
    /// A training config as `collie train CONFIG --set OVERRIDE` reads it: the input's first line is the
    /// `--set` value (`optimizer.lr=3e-4`; an empty line is none), the rest the YAML (or JSON) file.
    static func configYAML(_ input: [UInt8]) throws {
        let text = String(decoding: input, as: UTF8.self)
        let override: Substring
        let yaml: Substring
        if let newline = text.firstIndex(of: "\n") {
            override = text[..<newline]
            yaml = text[text.index(after: newline)...]
        } else {
            override = Substring(text)
            yaml = ""
        }
        _ = try CollieConfig(text: String(yaml), source: "fuzz.yaml", overrides: override.isEmpty ? [] : [String(override)])
    }
}
