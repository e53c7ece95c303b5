/// Byte-pair encoding as Hugging Face `tokenizers` runs it: split a word into characters (or bytes, for
/// byte-level vocabularies), then apply merge rules lowest rank first, leftmost first, with a priority queue.
///
/// Supports `byte_fallback` (unknown characters become `<0xXX>` tokens), `unk_token` with `fuse_unk`,
/// `continuing_subword_prefix`, `end_of_word_suffix` and `ignore_merges` (a word that is itself a token is
/// not split).
final class BPEModel {
    let vocabulary: Vocabulary
    private var merges: MergeTable
    private let unknownID: Int32
    private let fuseUnknown: Bool
    private let byteFallback: Bool
    private let ignoreMerges: Bool
    private let prefix: [UInt8]?
    private let suffix: [UInt8]?
    /// The id of each byte's `<0xXX>` token (byte fallback), or -1.
    private let byteFallbackIDs: [Int32]
    /// The id of each single-byte token (byte-level vocabularies), or -1.
    private let singleByteIDs: [Int32]

    /// Builds the model; `file` names the tokenizer file in errors.
    init(_ configuration: BPEConfiguration, spelling: Vocabulary.Spelling, file: String) throws {
        let vocabulary = Vocabulary(spelling: spelling, capacity: configuration.vocabulary.count)
        for index in 0..<configuration.vocabulary.count {
            configuration.vocabulary.withBytes(index) { _ = vocabulary.add(spelling: $0, id: configuration.vocabularyIDs[index]) }
        }
        self.vocabulary = vocabulary
        fuseUnknown = configuration.fuseUnknown
        byteFallback = configuration.byteFallback
        ignoreMerges = configuration.ignoreMerges
        // An empty prefix or suffix is the same as none.
        prefix = configuration.continuingSubwordPrefix.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        suffix = configuration.endOfWordSuffix.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        if let unknown = configuration.unknownToken {
            guard let id = vocabulary.id(ofToken: unknown) else {
                throw TokenizerError(file: file, "model.unk_token: '\(unknown)' is not in model.vocab")
            }
            unknownID = Int32(id)
        } else {
            unknownID = -1
        }
        byteFallbackIDs = (0..<256).map { byte in
            Int32(vocabulary.id(ofToken: "<0x\(String(byte, radix: 16, uppercase: true).leftPadded(to: 2))>") ?? -1)
        }
        singleByteIDs = (0..<256).map { byte in
            var single = [UInt8(byte)]
            return single.withUnsafeMutableBufferPointer { vocabulary.id(UnsafePointer($0.baseAddress!), 1) }
        }
        merges = try BPEModel.readMerges(configuration, vocabulary: vocabulary, file: file)
    }

    private static func readMerges(_ configuration: BPEConfiguration, vocabulary: Vocabulary,
                                   file: String) throws -> MergeTable {
        let ruleCount = configuration.merges.count / 2
        var merges = MergeTable(capacity: ruleCount)
        let prefixLength = configuration.continuingSubwordPrefix?.utf8.count ?? 0
        var left: [UInt8] = [], right: [UInt8] = [], merged: [UInt8] = []
        func tokenID(_ bytes: [UInt8]) -> Int32 { bytes.withUnsafeBufferPointer { vocabulary.lookup.value($0) } }
        for rule in 0..<ruleCount {
            left.removeAll(keepingCapacity: true)
            right.removeAll(keepingCapacity: true)
            func problem(_ what: String) -> TokenizerError {
                TokenizerError(file: file, "model.merges[\(rule)] ('\(configuration.merges.string(2 * rule))', "
                                   + "'\(configuration.merges.string(2 * rule + 1))'): \(what)")
            }
            let converted = configuration.merges.withBytes(2 * rule) { spelledBytes(of: $0, vocabulary, into: &left) }
                && configuration.merges.withBytes(2 * rule + 1) { spelledBytes(of: $0, vocabulary, into: &right) }
            guard converted else { throw problem("a token is not spelled with byte-level characters") }
            let leftID = tokenID(left), rightID = tokenID(right)
            guard leftID >= 0 else { throw problem("'\(configuration.merges.string(2 * rule))' is not in model.vocab") }
            guard rightID >= 0 else { throw problem("'\(configuration.merges.string(2 * rule + 1))' is not in model.vocab") }
            guard right.count >= prefixLength else { throw problem("the right token is shorter than the prefix") }
            merged.removeAll(keepingCapacity: true)
            merged.append(contentsOf: left)
            merged.append(contentsOf: right[prefixLength...])
            let mergedID = tokenID(merged)
            guard mergedID >= 0 else { throw problem("the merged token is not in model.vocab") }
            merges.insert(UInt32(leftID), UInt32(rightID), .init(rank: UInt32(rule), result: UInt32(mergedID)))
        }
        return merges
    }

    private static func spelledBytes(of spelled: UnsafeBufferPointer<UInt8>, _ vocabulary: Vocabulary,
                                     into output: inout [UInt8]) -> Bool {
        switch vocabulary.spelling {
        case .utf8: output.append(contentsOf: spelled); return true
        case .byteLevel: return ByteLevel.appendBytes(fromSpelling: spelled, to: &output)
        }
    }

    // MARK: - Encoding

    /// Appends the ids of one word (pre-token) to `output`.
    func encode(_ word: UnsafeBufferPointer<UInt8>, into output: inout [Int32], workspace: EncoderWorkspace) {
        guard let base = word.baseAddress, word.count > 0 else { return }
        let length = word.count
        if ignoreMerges {
            let id = vocabulary.id(base, length)
            if id >= 0 { output.append(id); return }
        }
        let cache = workspace.wordCache
        if length <= WordCache.maximumWordLength, cache.append(base, length, to: &output) { return }
        let start = output.count
        let symbols = workspace.symbols
        symbols.removeAll()
        if vocabulary.spelling == .byteLevel, prefix == nil, suffix == nil {
            addByteSymbols(base, length, to: symbols)
        } else {
            addCharacterSymbols(base, length, to: symbols)
        }
        mergeAll(symbols, workspace: workspace)
        symbols.appendIDs(to: &output)
        cache.store(base, length, ids: output[start...])
    }

    private func addByteSymbols(_ base: UnsafePointer<UInt8>, _ length: Int, to symbols: SymbolList) {
        var unknown: (id: Int32, length: Int)?
        for i in 0..<length {
            let id = singleByteIDs[Int(base[i])]
            if id >= 0 {
                if let pending = unknown { symbols.append(pending.id, length: pending.length); unknown = nil }
                symbols.append(id, length: 1)
            } else {
                handleUnknown(base + i, 1, symbols: symbols, unknown: &unknown)
            }
        }
        if let pending = unknown { symbols.append(pending.id, length: pending.length) }
    }

    /// Symbols are characters — or bytes, for byte-level vocabularies — with the prefix on all but the
    /// first and the suffix on the last.
    private func addCharacterSymbols(_ base: UnsafePointer<UInt8>, _ length: Int, to symbols: SymbolList) {
        var unknown: (id: Int32, length: Int)?
        var scratch: [UInt8] = []
        let byteLevel = vocabulary.spelling == .byteLevel
        var i = 0
        while i < length {
            let size = byteLevel ? 1 : min(UTF8Scanner.sequenceLength(base[i]), length - i)
            let isFirst = i == 0, isLast = i + size == length
            var id: Int32
            if (prefix == nil || isFirst) && (suffix == nil || !isLast) {
                id = vocabulary.id(base + i, size)
            } else {
                scratch.removeAll(keepingCapacity: true)
                if !isFirst, let prefix { scratch += prefix }
                scratch.append(contentsOf: UnsafeBufferPointer(start: base + i, count: size))
                if isLast, let suffix { scratch += suffix }
                id = scratch.withUnsafeBufferPointer { vocabulary.lookup.value($0) }
            }
            if id >= 0 {
                if let pending = unknown { symbols.append(pending.id, length: pending.length); unknown = nil }
                symbols.append(id, length: size)
            } else {
                handleUnknown(base + i, size, symbols: symbols, unknown: &unknown)
            }
            i += size
        }
        if let pending = unknown { symbols.append(pending.id, length: pending.length) }
    }

    /// A character that is not a token: its bytes' `<0xXX>` tokens, else the unknown token (fused with a
    /// preceding one when `fuse_unk`), else nothing — as `tokenizers` does.
    @inline(__always)
    private func handleUnknown(_ character: UnsafePointer<UInt8>, _ size: Int, symbols: SymbolList,
                               unknown: inout (id: Int32, length: Int)?) {
        if byteFallback {
            var all = true
            for k in 0..<size where byteFallbackIDs[Int(character[k])] < 0 { all = false }
            if all {
                for k in 0..<size { symbols.append(byteFallbackIDs[Int(character[k])], length: 1) }
                return
            }
        }
        guard unknownID >= 0 else { return }
        if let pending = unknown {
            if fuseUnknown {
                unknown = (pending.id, pending.length + size)
                return
            }
            symbols.append(pending.id, length: pending.length)
        }
        unknown = (unknownID, size)
    }

    /// Applies merge rules until none applies: lowest rank first, then leftmost.
    private func mergeAll(_ symbols: SymbolList, workspace: EncoderWorkspace) {
        let count = symbols.count
        guard count > 1 else { return }
        let queue = workspace.mergeQueue
        queue.removeAll()
        for i in 0..<(count - 1) {
            if let rule = merges.rule(UInt32(bitPattern: symbols.id[i]), UInt32(bitPattern: symbols.id[i + 1])) {
                queue.push(rank: rule.rank, position: Int32(i), result: rule.result)
            }
        }
        while let top = queue.pop() {
            let position = Int(top.position)
            if symbols.length[position] == 0 { continue }
            let next = Int(symbols.next[position])
            if next < 0 { continue }
            // Skip stale entries: the pair here must still produce the same token.
            guard let rule = merges.rule(UInt32(bitPattern: symbols.id[position]), UInt32(bitPattern: symbols.id[next])),
                  rule.result == top.result else { continue }
            symbols.id[position] = Int32(bitPattern: top.result)
            symbols.length[position] += symbols.length[next]
            symbols.length[next] = 0
            let after = symbols.next[next]
            symbols.next[position] = after
            if after >= 0 { symbols.previous[Int(after)] = Int32(position) }
            let previous = symbols.previous[position]
            if previous >= 0,
               let rule = merges.rule(UInt32(bitPattern: symbols.id[Int(previous)]), top.result) {
                queue.push(rank: rule.rank, position: previous, result: rule.result)
            }
            if after >= 0, let rule = merges.rule(top.result, UInt32(bitPattern: symbols.id[Int(after)])) {
                queue.push(rank: rule.rank, position: Int32(position), result: rule.result)
            }
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
