import CollieIO

/// Typed, checked reads of GGUF metadata: a value of the wrong type or an array of the wrong length is an error
/// naming the key.
struct GGUFMetadataReader {
    let file: String
    let metadata: [String: GGUFValue]

    func value(_ key: String) -> GGUFValue? { metadata[key] }

    func error(_ key: String, _ message: String) -> GGUFTokenizerError {
        GGUFTokenizerError(file: file, key: key, message)
    }

    func string(_ key: String) throws -> String? {
        guard let item = value(key) else { return nil }
        guard let text = item.string else { throw error(key, "expected a string, found a \(item.type)") }
        return text
    }

    func bool(_ key: String) throws -> Bool? {
        guard let item = value(key) else { return nil }
        guard let flag = item.bool else { throw error(key, "expected a boolean, found a \(item.type)") }
        return flag
    }

    func integer(_ key: String) throws -> Int? {
        guard let item = value(key) else { return nil }
        guard let number = item.int else { throw error(key, "expected an integer that fits, found \(item)") }
        return number
    }

    /// A token id: an integer in 0..<count.
    func tokenID(_ key: String, count: Int) throws -> Int? {
        guard let id = try integer(key) else { return nil }
        guard id >= 0, id < count else {
            throw error(key, "token id \(id) is out of range (tokenizer.ggml.tokens has \(count))")
        }
        return id
    }

    private func array(_ key: String, count: Int?) throws -> [GGUFValue]? {
        guard let item = value(key) else { return nil }
        guard let items = item.array else { throw error(key, "expected an array, found a \(item.type)") }
        if let count, items.count != count {
            throw error(key, "has \(items.count) entries but tokenizer.ggml.tokens has \(count)")
        }
        return items
    }

    func strings(_ key: String) throws -> [String] {
        try (array(key, count: nil) ?? []).enumerated().map { index, item in
            guard let text = item.string else { throw error(key, "entry \(index) is a \(item.type), not a string") }
            return text
        }
    }

    func integers(_ key: String, count: Int) throws -> [Int] {
        try (array(key, count: count) ?? []).enumerated().map { index, item in
            guard let number = item.int else { throw error(key, "entry \(index) is not an integer that fits") }
            return number
        }
    }

    func floats(_ key: String, count: Int) throws -> [Double]? {
        try array(key, count: count)?.enumerated().map { index, item in
            guard let number = item.double, !number.isNaN else {
                throw error(key, "entry \(index) is not a number")
            }
            return number
        }
    }
}
