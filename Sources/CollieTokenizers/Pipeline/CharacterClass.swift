/// The Unicode properties pre-tokenizers ask about, as bit flags per scalar, with a table for the BMP.
///
/// `\p{L}`, `\p{N}` and `\s` in the split patterns are general categories L*, N* and the White_Space
/// property, as in Oniguruma (the engine behind Hugging Face `tokenizers`).
struct CharacterClass: OptionSet {
    let rawValue: UInt8

    static let letter = CharacterClass(rawValue: 1)  // \p{L}
    static let number = CharacterClass(rawValue: 2)  // \p{N}
    static let whitespace = CharacterClass(rawValue: 4)  // \s (White_Space)
    static let word = CharacterClass(rawValue: 8)  // \w (Alphabetic, marks, Nd, Pc, Join_Control)
    static let punctuation = CharacterClass(rawValue: 16)  // P* or ASCII punctuation
    static let newline = CharacterClass(rawValue: 32)  // \r or \n

    /// Flags for every BMP scalar (surrogates: none), built once and never freed.
    /// Written once while initialized, then only read.
    nonisolated(unsafe) private static let basicPlane: UnsafePointer<UInt8> = {
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: 0x10000)
        for code in 0..<0x10000 {
            table[code] = Unicode.Scalar(UInt32(code)).map { compute($0).rawValue } ?? 0
        }
        return UnsafePointer(table)
    }()

    /// Runs `body` with the BMP flag table (index by scalar value below 0x10000), fetched once for a loop.
    @inline(__always)
    static func withTable<T>(_ body: (UnsafePointer<UInt8>) -> T) -> T { body(basicPlane) }

    /// The flags of a scalar value.
    @inline(__always)
    static func of(_ code: UInt32) -> CharacterClass {
        if code < 0x10000 { return CharacterClass(rawValue: basicPlane[Int(code)]) }
        guard let scalar = Unicode.Scalar(code) else { return [] }
        return compute(scalar)
    }

    private static func compute(_ scalar: Unicode.Scalar) -> CharacterClass {
        let properties = scalar.properties
        var flags: CharacterClass = []
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            flags.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            flags.insert(.number)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation:
            flags.insert(.punctuation)
        default:
            break
        }
        if scalar.isASCII, (0x21...0x2F).contains(scalar.value) || (0x3A...0x40).contains(scalar.value)
            || (0x5B...0x60).contains(scalar.value) || (0x7B...0x7E).contains(scalar.value) {
            flags.insert(.punctuation)
        }
        if properties.isWhitespace { flags.insert(.whitespace) }
        if scalar == "\r" || scalar == "\n" { flags.insert(.newline) }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation:
            flags.insert(.word)
        default:
            if properties.isAlphabetic || properties.isJoinControl { flags.insert(.word) }
        }
        return flags
    }
}

/// Decoding UTF-8 one scalar at a time from a byte buffer.
enum UTF8Scanner {
    /// The length of the sequence a lead byte starts (1 for stray continuation bytes).
    @inline(__always)
    static func sequenceLength(_ lead: UInt8) -> Int {
        if lead < 0xC0 { return 1 }
        if lead < 0xE0 { return 2 }
        if lead < 0xF0 { return 3 }
        return 4
    }

    /// The scalar value at `index` and its length in bytes. Input is valid UTF-8 (it comes from Swift
    /// strings); a truncated sequence yields U+FFFD with the bytes that are there.
    @inline(__always)
    static func decode(_ bytes: UnsafePointer<UInt8>, _ index: Int, _ end: Int) -> (UInt32, Int) {
        let lead = bytes[index]
        if lead < 0x80 { return (UInt32(lead), 1) }
        let length = sequenceLength(lead)
        guard index + length <= end, length > 1 else { return (0xFFFD, 1) }
        switch length {
        case 2:
            return (UInt32(lead & 0x1F) << 6 | UInt32(bytes[index + 1] & 0x3F), 2)
        case 3:
            return (UInt32(lead & 0x0F) << 12 | UInt32(bytes[index + 1] & 0x3F) << 6 | UInt32(bytes[index + 2] & 0x3F), 3)
        default:
            return (UInt32(lead & 0x07) << 18 | UInt32(bytes[index + 1] & 0x3F) << 12
                    | UInt32(bytes[index + 2] & 0x3F) << 6 | UInt32(bytes[index + 3] & 0x3F), 4)
        }
    }

    /// Whether `bytes` is well-formed UTF-8.
    static func isValid(_ bytes: some Sequence<UInt8>) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
