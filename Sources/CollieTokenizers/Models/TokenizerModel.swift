/// The `model` of a tokenizer.json as read from the file, before the vocabulary's spelling is known.
enum TokenizerModelConfiguration {
    case bpe(BPEConfiguration)
    case unigram(unknownID: Int?, pieces: [(token: String, score: Double)], byteFallback: Bool)
    case wordLevel(vocabulary: [(token: String, id: Int32)], unknownToken: String?)

    /// Reads the `model` object. Files without a `"type"` are recognized by their fields, as `tokenizers`
    /// does.
    init(json: inout JSONReader) throws {
        var type = try json.typeTag()
        if type == nil {
            var probe = json
            var keys: Set<String> = []
            var vocabularyIsArray = false
            try probe.forEachMember { json, key in
                keys.insert(key)
                if key == "vocab" { vocabularyIsArray = json.peekKind() == .array }
                try json.skipValue()
            }
            type = keys.contains("merges") ? "BPE" : vocabularyIsArray ? "Unigram" : keys.contains("vocab") ? "WordLevel" : nil
        }
        switch type {
        case "BPE":
            self = .bpe(try BPEConfiguration(json: &json))
        case "Unigram":
            var unknownID: Int?, pieces: [(token: String, score: Double)] = [], byteFallback = false
            try json.forEachMember { json, key in
                switch key {
                case "unk_id": unknownID = json.readNull() ? nil : try json.readInt()
                case "byte_fallback": byteFallback = try json.readBool()
                case "vocab":
                    try json.forEachElement { json, _ in
                        var token: String?, score: Double?
                        try json.forEachElement { json, index in
                            switch index {
                            case 0: token = try json.readString()
                            case 1: score = try json.readDouble()
                            default: throw json.error("a Unigram vocab entry is [piece, score]")
                            }
                        }
                        guard let token, let score else { throw json.error("a Unigram vocab entry is [piece, score]") }
                        guard pieces.count < JSONReader.maximumTokenID else { throw json.error("too many pieces") }
                        pieces.append((token, score))
                    }
                default: try json.skipValue()
                }
            }
            if let unknownID, !pieces.indices.contains(unknownID) {
                throw json.error("model.unk_id \(unknownID) is not an index of model.vocab")
            }
            self = .unigram(unknownID: unknownID, pieces: pieces, byteFallback: byteFallback)
        case "WordLevel":
            var vocabulary: [(token: String, id: Int32)] = [], unknownToken: String?
            try json.forEachMember { json, key in
                switch key {
                case "vocab": try json.forEachMember { json, token in vocabulary.append((token, try json.readTokenID())) }
                case "unk_token": unknownToken = json.readNull() ? nil : try json.readString()
                default: try json.skipValue()
                }
            }
            self = .wordLevel(vocabulary: vocabulary, unknownToken: unknownToken)
        case let other?:
            throw json.error("unsupported model type '\(other)' (supported: BPE, Unigram, WordLevel)")
        case nil:
            throw json.error("the model has no \"type\" and is not recognizable as BPE, Unigram or WordLevel")
        }
    }
}

/// A tokenizer.json model, built: turns one pre-token into ids.
enum TokenizerModel {
    case bpe(BPEModel)
    case unigram(UnigramModel<Double>, vocabulary: Vocabulary, unknownID: Int32, byteFallbackIDs: [Int32]?)
    case wordLevel(Vocabulary, unknownID: Int32)

    init(_ configuration: TokenizerModelConfiguration, spelling: Vocabulary.Spelling, file: String) throws {
        switch configuration {
        case .bpe(let bpe):
            self = .bpe(try BPEModel(bpe, spelling: spelling, file: file))
        case .unigram(let unknownID, let pieces, let byteFallback):
            guard spelling == .utf8 else {
                throw TokenizerError(file: file, "model: a Unigram model cannot follow a ByteLevel pre-tokenizer")
            }
            let vocabulary = Vocabulary(spelling: .utf8, capacity: pieces.count)
            for (id, piece) in pieces.enumerated() {
                var token = piece.token
                token.withUTF8 { _ = vocabulary.add(bytes: $0, id: Int32(id)) }
            }
            let minimum = pieces.map(\.score).min() ?? 0
            let model = UnigramModel<Double>(
                pieces: pieces.map { (Array($0.token.utf8), $0.score, .normal) }, unknownID: Int32(unknownID ?? -1),
                unknownScore: minimum - 10, maxScore: pieces.map(\.score).max() ?? 0)
            let byteIDs: [Int32]? = byteFallback ? (0..<256).map { byte in
                Int32(vocabulary.id(ofToken: "<0x" + String(byte, radix: 16, uppercase: true).paddedHex + ">") ?? -1)
            } : nil
            self = .unigram(model, vocabulary: vocabulary, unknownID: Int32(unknownID ?? -1), byteFallbackIDs: byteIDs)
        case .wordLevel(let entries, let unknownToken):
            let vocabulary = Vocabulary(spelling: spelling, capacity: entries.count)
            for entry in entries {
                var token = entry.token
                token.withUTF8 { _ = vocabulary.add(spelling: $0, id: entry.id) }
            }
            let unknownID = unknownToken.flatMap { vocabulary.id(ofToken: $0) }.map(Int32.init) ?? -1
            self = .wordLevel(vocabulary, unknownID: unknownID)
        }
    }

    var vocabulary: Vocabulary {
        switch self {
        case .bpe(let model): return model.vocabulary
        case .unigram(_, let vocabulary, _, _): return vocabulary
        case .wordLevel(let vocabulary, _): return vocabulary
        }
    }

    /// Appends the ids of one pre-token to `output`.
    @inline(__always)
    func encode(_ word: UnsafeBufferPointer<UInt8>, into output: inout [Int32], workspace: EncoderWorkspace) {
        switch self {
        case .bpe(let model):
            model.encode(word, into: &output, workspace: workspace)
        case .unigram(let model, _, let unknownID, let byteFallbackIDs):
            guard let base = word.baseAddress else { return }
            var unknownRun: Range<Int>?
            func flushUnknown() {
                guard let run = unknownRun else { return }
                unknownRun = nil
                if let byteFallbackIDs, run.allSatisfy({ byteFallbackIDs[Int(base[$0])] >= 0 }) {
                    for i in run { output.append(byteFallbackIDs[Int(base[i])]) }
                } else if unknownID >= 0 {
                    output.append(unknownID)
                }
            }
            for piece in model.segment(base, 0..<word.count) {
                if piece.id == unknownID {
                    // Consecutive unknown pieces are one token (fuse_unk).
                    unknownRun = (unknownRun?.lowerBound ?? piece.range.lowerBound)..<piece.range.upperBound
                } else {
                    flushUnknown()
                    output.append(piece.id)
                }
            }
            flushUnknown()
        case .wordLevel(let vocabulary, let unknownID):
            guard let base = word.baseAddress else { return }
            let id = vocabulary.id(base, word.count)
            if id >= 0 { output.append(id) } else if unknownID >= 0 { output.append(unknownID) }
        }
    }
}

extension String {
    /// Two hex digits, zero-padded.
    fileprivate var paddedHex: String { count >= 2 ? self : "0" + self }
}
