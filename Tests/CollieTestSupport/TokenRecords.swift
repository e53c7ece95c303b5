import Foundation

/// Writes `{"tokens", "labels"?}` records (the `tokens` record format) as JSON lines.
public func writeTokenRecords(_ records: [(tokens: [Int], labels: [Int]?)], to url: URL) throws {
    var text = ""
    for record in records {
        text += "{\"tokens\": \(record.tokens)" + (record.labels.map { ", \"labels\": \($0)" } ?? "") + "}\n"
    }
    try text.write(to: url, atomically: true, encoding: .utf8)
}

/// `count` records of random ids in 3..<64 (the vocabulary of the training fixtures' model) with lengths in
/// `lengths`, drawn from `generator` (the engine's seeded `RandomGenerator` in the tests); every third record
/// (index 1, 4, …) has labels that mask its first third.
public func randomTokenRecords(count: Int, lengths: ClosedRange<Int>, using generator: inout some RandomNumberGenerator)
    -> [(tokens: [Int], labels: [Int]?)] {
    (0..<count).map { index in
        let length = lengths.lowerBound + Int(generator.next() % UInt64(lengths.count))
        let tokens = (0..<length).map { _ in 3 + Int(generator.next() % 61) }
        guard index % 3 == 1 else { return (tokens, nil) }
        let prompt = length / 3
        return (tokens, [Int](repeating: -100, count: prompt) + tokens[prompt...])
    }
}
