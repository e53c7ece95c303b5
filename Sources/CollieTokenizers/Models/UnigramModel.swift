/// Unigram language-model segmentation: the split of a word into pieces with the highest total score
/// (Viterbi over every piece that starts at every character), as SentencePiece and `tokenizers` run it.
///
/// Generic over the score type because the references differ: SentencePiece adds `Float` scores, Hugging
/// Face `tokenizers` adds `Double`s, and ties are broken the same way (earliest start wins).
final class UnigramModel<Score: BinaryFloatingPoint> {
    /// How a piece takes part in segmentation.
    enum PieceKind: UInt8 {
        case normal
        /// Always chosen where it matches (SentencePiece user-defined symbols).
        case userDefined
        /// Not a candidate (SentencePiece unused pieces, and ids without a piece).
        case excluded
    }

    /// Candidate pieces (UTF-8 bytes → id).
    let pieces: ByteStringTable
    private let scores: [Score]
    private let kinds: [PieceKind]
    private let unknownID: Int32
    private let unknownScore: Score
    private let maxScore: Score
    /// Every proper prefix of a piece that ends on a character boundary, to stop extending early.
    private let prefixes: ByteStringTable
    private let longestPiece: Int

    /// A model over `pieces` (bytes, score, kind) indexed by id; `unknownScore` is the score of an unknown
    /// character (the minimum score less 10 in both references, over their own choice of pieces).
    init(pieces entries: [(bytes: [UInt8], score: Score, kind: PieceKind)], unknownID: Int32, unknownScore: Score,
         maxScore: Score) {
        let table = ByteStringTable(capacity: entries.count)
        let prefixes = ByteStringTable(capacity: entries.count * 2)
        var longest = 0
        for (id, entry) in entries.enumerated() where entry.kind != .excluded && !entry.bytes.isEmpty {
            entry.bytes.withUnsafeBufferPointer { bytes in
                table.insert(bytes, value: Int32(id))
                var end = 0
                while end < bytes.count {
                    end += UTF8Scanner.sequenceLength(bytes[end])
                    if end < bytes.count { prefixes.insert(UnsafeBufferPointer(rebasing: bytes[..<end]), value: 1) }
                }
            }
            longest = max(longest, entry.bytes.count)
        }
        self.pieces = table
        self.prefixes = prefixes
        self.longestPiece = longest
        self.scores = entries.map(\.score)
        self.kinds = entries.map(\.kind)
        self.unknownID = unknownID
        self.unknownScore = unknownScore
        self.maxScore = maxScore
    }

    /// The best segmentation of `bytes[range]` as (byte range, id) pairs, unknown characters as
    /// `unknownID`, one per character.
    func segment(_ bytes: UnsafePointer<UInt8>, _ range: Range<Int>) -> [(range: Range<Int>, id: Int32)] {
        let size = range.count
        guard size > 0 else { return [] }
        let base = bytes + range.lowerBound
        var bestScore = [Score](repeating: 0, count: size + 1)
        var bestStart = [Int](repeating: -1, count: size + 1)
        var bestID = [Int32](repeating: -1, count: size + 1)
        var start = 0
        while start < size {
            let pathScore = bestScore[start]
            let characterLength = min(UTF8Scanner.sequenceLength(base[start]), size - start)
            var hasSingleCharacter = false
            var end = start
            while end < size, end - start < longestPiece {
                end += min(UTF8Scanner.sequenceLength(base[end]), size - end)
                let length = end - start
                let id = pieces.value(base + start, length)
                if id >= 0 {
                    let score = kinds[Int(id)] == .userDefined ? Score(length) * maxScore - Score(0.1) : scores[Int(id)]
                    let candidate = score + pathScore
                    if bestStart[end] == -1 || candidate > bestScore[end] {
                        bestScore[end] = candidate
                        bestStart[end] = start
                        bestID[end] = id
                    }
                    if length == characterLength { hasSingleCharacter = true }
                }
                if prefixes.value(base + start, length) < 0 { break }
            }
            if !hasSingleCharacter {
                let end = start + characterLength
                let candidate = unknownScore + pathScore
                if bestStart[end] == -1 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    bestStart[end] = start
                    bestID[end] = unknownID
                }
            }
            start += characterLength
        }
        var result: [(range: Range<Int>, id: Int32)] = []
        var end = size
        while end > 0 {
            let start = bestStart[end]
            result.append(((range.lowerBound + start)..<(range.lowerBound + end), bestID[end]))
            end = start
        }
        result.reverse()
        return result
    }
}
