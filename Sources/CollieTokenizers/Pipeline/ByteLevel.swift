/// GPT-2's reversible map between bytes and printable characters ("bytes_to_unicode").
///
/// Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100 onwards, in byte order.
/// Byte-level vocabularies spell every token with these characters; Collie keeps such tokens as raw bytes
/// and converts only at the edges (loading the vocabulary, returning token strings).
enum ByteLevel {
    /// The character for each byte.
    static let characterForByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte for each character code below 324 (U+0144), or -1 where there is none.
    static let byteForCharacter: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for (byte, scalar) in characterForByte.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// Appends the bytes a byte-level spelling stands for to `output`; false (and `output` unspecified) if
    /// a character is not one of the 256. Every such character is below U+0144, so at most two UTF-8 bytes.
    static func appendBytes(fromSpelling utf8: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) -> Bool {
        var i = 0
        while i < utf8.count {
            let lead = utf8[i]
            let code: Int
            if lead < 0x80 {
                code = Int(lead)
                i += 1
            } else if lead & 0xE0 == 0xC0, i + 1 < utf8.count {
                code = Int(lead & 0x1F) << 6 | Int(utf8[i + 1] & 0x3F)
                i += 2
            } else {
                return false
            }
            guard code < byteForCharacter.count else { return false }
            let byte = byteForCharacter[code]
            if byte < 0 { return false }
            output.append(UInt8(byte))
        }
        return true
    }

    /// The byte-level spelling of raw bytes.
    static func spelling(of bytes: some Sequence<UInt8>) -> String {
        var text = String.UnicodeScalarView()
        for byte in bytes { text.append(characterForByte[Int(byte)]) }
        return String(text)
    }
}
