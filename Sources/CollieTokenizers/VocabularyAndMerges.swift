import Foundation

/// GPT-2's original tokenizer files — `vocab.json` (token → id), `merges.txt` (one merge per line after a
/// `#version` line) and `added_tokens.json` — the format of folders with no tokenizer.json (MOSS's moss-moon-003,
/// CodeGen, GPT-2 itself). They describe the byte-level BPE tokenizer a tokenizer.json spells out, so they are read
/// as that document: ByteLevel pre-tokenizer (GPT-2's pattern; `add_prefix_space` from tokenizer_config.json),
/// BPE, ByteLevel decoder; the configuration's special tokens (bos, eos, unk, pad, mask) are special added tokens,
/// added_tokens.json's are plain added tokens — as `transformers` loads such a folder.
enum VocabularyAndMerges {
    static let vocabularyFile = "vocab.json", mergesFile = "merges.txt", addedTokensFile = "added_tokens.json"

    /// Whether `folder` holds vocab.json and merges.txt.
    static func isPresent(in folder: URL) -> Bool {
        [vocabularyFile, mergesFile].allSatisfy { FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path) }
    }

    /// The tokenizer.json document the files of `folder` describe.
    /// - Throws: `TokenizerError` or `JSONReadError` naming the file that is malformed.
    static func tokenizerJSON(folder: URL, configuration: TokenizerConfiguration, addPrefixSpace: Bool) throws -> [UInt8] {
        let vocabularyURL = folder.appendingPathComponent(vocabularyFile)
        let vocabulary = try readTokenIDs(vocabularyURL)
        let addedURL = folder.appendingPathComponent(addedTokensFile)
        let addedTokens = FileManager.default.fileExists(atPath: addedURL.path) ? try readTokenIDs(addedURL) : []
        let merges = try readMerges(folder.appendingPathComponent(mergesFile))

        let specials = Set([configuration.bosToken, configuration.eosToken, configuration.unknownToken,
                            configuration.padToken, configuration.maskToken].compactMap { $0 })
        var added: [(id: Int, content: String, special: Bool)] = addedTokens.map { ($0.id, $0.token, specials.contains($0.token)) }
        for token in specials.sorted() where !added.contains(where: { $0.content == token }) {
            if let id = vocabulary.first(where: { $0.token == token })?.id { added.append((id, token, true)) }
        }
        added.sort { $0.id < $1.id }

        var json = "{\"version\":\"1.0\",\"added_tokens\":["
        json += added.map { token in
            "{\"id\":\(token.id),\"content\":\(quoted(token.content)),\"single_word\":false,\"lstrip\":false,"
                + "\"rstrip\":false,\"normalized\":false,\"special\":\(token.special)}"
        }.joined(separator: ",")
        json += "],\"normalizer\":null,"
        json += "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":\(addPrefixSpace),\"trim_offsets\":true,\"use_regex\":true},"
        json += "\"post_processor\":null,"
        json += "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
        json += "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\","
        json += "\"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{"
        json += vocabulary.map { "\(quoted($0.token)):\($0.id)" }.joined(separator: ",")
        json += "},\"merges\":["
        json += merges.map(quoted).joined(separator: ",")
        json += "]}}"
        return Array(json.utf8)
    }

    /// The members of a JSON object of token → id, in file order.
    private static func readTokenIDs(_ url: URL) throws -> [(token: String, id: Int)] {
        var result: [(token: String, id: Int)] = []
        try JSONReader.readTokenizerFile(try Tokenizer.readFile(url), file: url.path) { json in
            guard json.peekKind() == .object else { throw json.error("expected a JSON object of token → id") }
            try json.forEachMember { json, token in
                let id = try json.readInt()
                guard (0..<(1 << 31)).contains(id) else { throw json.error("the id of \(token) must be 0…2^31−1") }
                result.append((token, id))
            }
        }
        return result
    }

    /// The merges of merges.txt: each line `a b`, after an optional `#version` line; blank lines are skipped.
    private static func readMerges(_ url: URL) throws -> [String] {
        guard let text = String(bytes: try Tokenizer.readFile(url), encoding: .utf8) else {
            throw TokenizerError(file: url.path, "is not UTF-8 text")
        }
        var merges: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = line.hasSuffix("\r") ? line.dropLast() : line
            if line.isEmpty || (index == 0 && line.hasPrefix("#version")) { continue }
            guard line.split(separator: " ", omittingEmptySubsequences: false).count == 2 else {
                throw TokenizerError(file: url.path, "line \(index + 1): a merge is two tokens separated by one space")
            }
            merges.append(String(line))
        }
        return merges
    }

    /// `text` as a JSON string.
    private static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
