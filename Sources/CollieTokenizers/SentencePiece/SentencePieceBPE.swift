/// SentencePiece's BPE (`bpe_model.cc`): start from characters (user-defined symbols whole and frozen),
/// repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties),
/// then split unused pieces back into the pieces they were merged from.
struct SentencePieceBPE {
    /// Normal, user-defined and unused pieces (bytes → id): the pieces merges may produce.
    let pieces: ByteStringTable
    let scores: [Float]
    let isUnused: [Bool]
    /// User-defined symbols, longest first.
    let userDefinedSymbols: [[UInt8]]

    private struct Symbol {
        var start: Int
        var length: Int
        var previous: Int
        var next: Int
        var frozen: Bool
    }

    private struct Candidate {
        var left: Int
        var right: Int
        var score: Float
        var size: Int

        /// Pops first: higher score, then smaller left index.
        func precedes(_ other: Candidate) -> Bool {
            score > other.score || (score == other.score && left < other.left)
        }
    }

    /// The pieces of `text`, in order.
    func encode(_ text: [UInt8]) -> [ArraySlice<UInt8>] {
        text.withUnsafeBufferPointer { encode(text, $0) }
    }

    private func encode(_ array: [UInt8], _ text: UnsafeBufferPointer<UInt8>) -> [ArraySlice<UInt8>] {
        guard let base = text.baseAddress, !text.isEmpty else { return [] }
        var symbols: [Symbol] = []
        symbols.reserveCapacity(text.count)
        var position = 0
        while position < text.count {
            var length = min(UTF8Scanner.sequenceLength(base[position]), text.count - position)
            var frozen = false
            for symbol in userDefinedSymbols where symbol.count <= text.count - position {
                if (0..<symbol.count).allSatisfy({ base[position + $0] == symbol[$0] }) {
                    length = symbol.count
                    frozen = true
                    break
                }
            }
            let index = symbols.count
            symbols.append(Symbol(start: position, length: length, previous: index - 1,
                                  next: position + length < text.count ? index + 1 : -1, frozen: frozen))
            position += length
        }

        var heap: [Candidate] = []
        // Unused piece → the two pieces it was merged from (the last merge recorded wins, as in bpe_model.cc).
        var reverseMerges: [ArraySlice<UInt8>: (ArraySlice<UInt8>, ArraySlice<UInt8>)] = [:]
        func addCandidate(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0, !symbols[left].frozen, !symbols[right].frozen else { return }
            let size = symbols[left].length + symbols[right].length
            let id = pieces.value(base + symbols[left].start, size)
            guard id >= 0 else { return }
            push(&heap, Candidate(left: left, right: right, score: scores[Int(id)], size: size))
            if isUnused[Int(id)] {
                let start = symbols[left].start
                reverseMerges[array[start..<(start + size)]] = (array[start..<(start + symbols[left].length)],
                                                               array[symbols[right].start..<(symbols[right].start + symbols[right].length)])
            }
        }
        for i in 1..<max(symbols.count, 1) { addCandidate(i - 1, i) }

        while let top = pop(&heap) {
            let left = symbols[top.left], right = symbols[top.right]
            if left.length == 0 || right.length == 0 || left.length + right.length != top.size { continue }
            symbols[top.left].length = top.size
            symbols[top.left].next = right.next
            if right.next >= 0 { symbols[right.next].previous = top.left }
            symbols[top.right].length = 0
            addCandidate(symbols[top.left].previous, top.left)
            addCandidate(top.left, symbols[top.left].next)
        }

        var output: [ArraySlice<UInt8>] = []
        func resegment(_ piece: ArraySlice<UInt8>) {
            let id = piece.withUnsafeBufferPointer { pieces.value($0) }
            if id >= 0, isUnused[Int(id)], let parts = reverseMerges[piece] {
                resegment(parts.0)
                resegment(parts.1)
            } else {
                output.append(piece)
            }
        }
        var index = symbols.isEmpty ? -1 : 0
        while index >= 0 {
            resegment(array[symbols[index].start..<(symbols[index].start + symbols[index].length)])
            index = symbols[index].next
        }
        return output
    }

    private func push(_ heap: inout [Candidate], _ candidate: Candidate) {
        var i = heap.count
        heap.append(candidate)
        while i > 0 {
            let parent = (i - 1) / 2
            if !candidate.precedes(heap[parent]) { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = candidate
    }

    private func pop(_ heap: inout [Candidate]) -> Candidate? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            var i = 0
            while true {
                let left = 2 * i + 1
                if left >= heap.count { break }
                let right = left + 1
                let child = right < heap.count && heap[right].precedes(heap[left]) ? right : left
                if !heap[child].precedes(last) { break }
                heap[i] = heap[child]
                i = child
            }
            heap[i] = last
        }
        return top
    }
}
