/// A tokenizer.json post-processor: adds the special tokens around an encoded sequence (`<s>` before it,
/// `[CLS] … [SEP]`) when encoding with special tokens.
indirect enum PostProcessor {
    /// A template of pieces: the sequence itself, and special tokens (each standing for a list of ids).
    case template(single: [TemplatePiece], specialTokens: [String: [Int32]])
    /// Only adjusts offsets; ids are unchanged.
    case byteLevel
    /// `[CLS] A [SEP]`
    case bert(cls: Int32, sep: Int32)
    /// `<s> A </s>`
    case roberta(cls: Int32, sep: Int32)
    case sequence([PostProcessor])

    /// One piece of a template.
    enum TemplatePiece: Equatable {
        case sequence
        case special(String)
    }

    /// Reads a post-processor object (`{"type": …}`).
    init(json: inout JSONReader) throws {
        guard let type = try json.typeTag() else { throw json.error("a post-processor needs a \"type\"") }
        var single: [TemplatePiece]?, specials: [String: [Int32]] = [:], list: [PostProcessor]?
        var cls: Int32?, sep: Int32?
        try json.forEachMember { json, key in
            switch (type, key) {
            case (_, "type"): try json.skipValue()
            case ("TemplateProcessing", "single"): single = try PostProcessor.readTemplate(&json)
            case ("TemplateProcessing", "special_tokens"):
                try json.forEachMember { json, name in
                    var ids: [Int32] = []
                    try json.forEachMember { json, field in
                        if field == "ids" {
                            try json.forEachElement { json, _ in ids.append(try json.readTokenID()) }
                        } else {
                            try json.skipValue()
                        }
                    }
                    specials[name] = ids
                }
            case ("BertProcessing", "cls"), ("RobertaProcessing", "cls"): cls = try PostProcessor.readTokenPair(&json)
            case ("BertProcessing", "sep"), ("RobertaProcessing", "sep"): sep = try PostProcessor.readTokenPair(&json)
            case ("Sequence", "processors"):
                var items: [PostProcessor] = []
                try json.forEachElement { json, _ in items.append(try PostProcessor(json: &json)) }
                list = items
            default: try json.skipValue()
            }
        }
        switch type {
        case "TemplateProcessing":
            guard let single else { throw json.error("TemplateProcessing needs \"single\"") }
            for case .special(let name) in single where specials[name] == nil {
                throw json.error("TemplateProcessing uses special token '\(name)' missing from \"special_tokens\"")
            }
            self = .template(single: single, specialTokens: specials)
        case "ByteLevel": self = .byteLevel
        case "BertProcessing", "RobertaProcessing":
            guard let cls, let sep else { throw json.error("\(type) needs \"cls\" and \"sep\"") }
            self = type == "BertProcessing" ? .bert(cls: cls, sep: sep) : .roberta(cls: cls, sep: sep)
        case "Sequence":
            guard let list else { throw json.error("Sequence needs \"processors\"") }
            self = .sequence(list)
        default:
            throw json.error("unsupported post-processor type '\(type)' (supported: TemplateProcessing, ByteLevel, "
                             + "BertProcessing, RobertaProcessing, Sequence)")
        }
    }

    /// A template: `[{"SpecialToken": {"id": "<s>", …}}, {"Sequence": {"id": "A", …}}]` or `"<s> $A"`.
    private static func readTemplate(_ json: inout JSONReader) throws -> [TemplatePiece] {
        if json.peekKind() == .string {
            return try json.readString().split(separator: " ").map { piece(String($0)) }
        }
        var pieces: [TemplatePiece] = []
        try json.forEachElement { json, _ in
            if json.peekKind() == .string {
                pieces.append(piece(try json.readString()))
                return
            }
            try json.forEachMember { json, kind in
                var id = ""
                try json.forEachMember { json, field in
                    if field == "id" { id = try json.readString() } else { try json.skipValue() }
                }
                switch kind {
                case "Sequence": pieces.append(.sequence)
                case "SpecialToken": pieces.append(.special(id))
                default: throw json.error("unknown template piece '\(kind)'")
                }
            }
        }
        return pieces
    }

    /// `$A`, `$B`, `$0`… (optionally `:type_id`) are the sequence; anything else names a special token.
    private static func piece(_ text: String) -> TemplatePiece {
        let name = text.split(separator: ":", maxSplits: 1).first.map(String.init) ?? text
        return name.hasPrefix("$") ? .sequence : .special(name)
    }

    /// `["[CLS]", 101]`: the id.
    private static func readTokenPair(_ json: inout JSONReader) throws -> Int32 {
        var id: Int32?
        try json.forEachElement { json, index in
            if index == 1 { id = try json.readTokenID() } else { try json.skipValue() }
        }
        guard let id else { throw json.error("expected [token, id]") }
        return id
    }

    /// The ids of one sequence with the special tokens added.
    func process(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .template(let single, let specials):
            var result: [Int32] = []
            result.reserveCapacity(ids.count + 4)
            for piece in single {
                switch piece {
                case .sequence: result += ids
                case .special(let name): result += specials[name] ?? []
                }
            }
            return result
        case .byteLevel:
            return ids
        case .bert(let cls, let sep), .roberta(let cls, let sep):
            return [cls] + ids + [sep]
        case .sequence(let steps):
            return steps.reduce(ids) { $1.process($0) }
        }
    }
}
