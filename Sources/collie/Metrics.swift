import ArgumentParser
import Collie
import Foundation

/// `collie metrics`: BLEU, ROUGE, F1 or accuracy of line-aligned prediction and reference files, as JSON.
struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score predictions against references (BLEU as sacrebleu, ROUGE as rouge-score, F1 as scikit-learn).",
        discussion: """
            Files are line-aligned: line i of --predictions goes with line i of every --references file. \
            A .jsonl file holds one JSON string (or, for labels, a string or integer) per line, so texts may \
            contain newlines (ROUGE-Lsum splits sentences on them).
            Examples:
              collie metrics --metric bleu --predictions hyp.txt --references ref.txt --tokenize 13a
              collie metrics --metric rouge --predictions pred.jsonl --references ref.jsonl --use-stemmer
              collie metrics --metric f1 --predictions pred.jsonl --references gold.jsonl
            """)

    enum Metric: String, ExpressibleByArgument, CaseIterable { case bleu, rouge, f1, accuracy }

    @Option(help: "bleu, rouge, f1 or accuracy.")
    var metric: Metric

    @Option(help: "The predictions (hypotheses), one per line.")
    var predictions: String

    @Option(help: "The references, one per line; repeat for several references per prediction (BLEU, ROUGE).")
    var references: [String]

    @Option(help: "BLEU tokenizer: 13a, none, intl, zh or char.")
    var tokenize: String = "13a"

    @Option(help: "BLEU smoothing: exp, floor, add-k or none.")
    var smoothMethod: String = "exp"

    @Option(help: "BLEU smoothing value for floor (default 0.1) and add-k (default 1).")
    var smoothValue: Double?

    @Option(help: "BLEU's highest n-gram order.")
    var maxNgramOrder = 4

    @Flag(help: "BLEU: lowercase before tokenizing.")
    var lowercase = false

    @Flag(help: "BLEU: also print each line's sentence BLEU (effective order, as sacrebleu.sentence_bleu).")
    var sentence = false

    @Option(help: "ROUGE types, comma-separated.")
    var rougeTypes = "rouge1,rouge2,rougeL,rougeLsum"

    @Flag(help: "ROUGE: Porter-stem tokens longer than 3 characters.")
    var useStemmer = false

    func run() throws {
        do {
            try FileHandle.standardOutput.write(contentsOf: Data((JSONOutput.text(try score()) + "\n").utf8))
        } catch {
            ConsoleOutput.standardError("collie metrics: error: \(error)\n")
            throw ExitCode.failure
        }
    }

    private func score() throws -> [String: Any] {
        let hypotheses = try Self.lines(of: predictions)
        let referenceFiles = try references.map { path in
            let lines = try Self.lines(of: path)
            guard lines.count == hypotheses.count else {
                throw MetricsError("\(path) has \(lines.count) lines but \(predictions) has \(hypotheses.count)")
            }
            return lines
        }
        guard !referenceFiles.isEmpty else { throw MetricsError("give at least one --references file") }
        let perLine = hypotheses.indices.map { i in referenceFiles.map { $0[i] } }
        var result: [String: Any] = ["metric": metric.rawValue, "count": hypotheses.count]
        switch metric {
        case .bleu:
            guard let tokenizer = BLEUTokenizer(rawValue: tokenize) else {
                throw MetricsError("--tokenize \(tokenize): expected one of " + BLEUTokenizer.allCases.map(\.rawValue).joined(separator: ", "))
            }
            guard let smoothing = BLEU.Smoothing(rawValue: smoothMethod) else {
                throw MetricsError("--smooth-method \(smoothMethod): expected one of " + BLEU.Smoothing.allCases.map(\.rawValue).joined(separator: ", "))
            }
            var bleu = BLEU(tokenizer: tokenizer, lowercase: lowercase, smoothing: smoothing, smoothValue: smoothValue,
                            maxNGramOrder: maxNgramOrder)
            let score = try bleu.corpusScore(hypotheses: hypotheses, references: perLine)
            result.merge(["score": score.score, "precisions": score.precisions, "bp": score.brevityPenalty,
                          "hyp_len": score.hypothesisLength, "ref_len": score.referenceLength, "counts": score.matches,
                          "totals": score.totals, "tokenize": tokenizer.rawValue, "smooth_method": smoothing.rawValue,
                          "lowercase": lowercase, "max_ngram_order": maxNgramOrder, "references": referenceFiles.count]) { $1 }
            if sentence {
                bleu.effectiveOrder = true
                result["sentence_scores"] = try zip(hypotheses, perLine).map {
                    try bleu.sentenceScore(hypothesis: $0, references: $1).score
                }
            }
        case .rouge:
            let types = try rougeTypes.split(separator: ",").map { try ROUGE.Kind(name: String($0).trimmingCharacters(in: .whitespaces)) }
            let rouge = ROUGE(types: types, stemming: useStemmer)
            var sums: [ROUGE.Kind: (Double, Double, Double)] = [:]
            for (hypothesis, targets) in zip(hypotheses, perLine) {
                for (kind, score) in try rouge.score(targets: targets, prediction: hypothesis) {
                    let s = sums[kind] ?? (0, 0, 0)
                    sums[kind] = (s.0 + score.precision, s.1 + score.recall, s.2 + score.fmeasure)
                }
            }
            let n = Double(max(hypotheses.count, 1))
            for (kind, s) in sums { result["\(kind)"] = ["precision": s.0 / n, "recall": s.1 / n, "fmeasure": s.2 / n] }
            result["use_stemmer"] = useStemmer
        case .f1, .accuracy:
            guard referenceFiles.count == 1 else { throw MetricsError("--metric \(metric.rawValue) takes one --references file") }
            let gold = referenceFiles[0]
            if let predicted = Self.integers(hypotheses), let expected = Self.integers(gold) {
                result.merge(try Self.classification(predicted, expected, metric: metric)) { $1 }
            } else {
                result.merge(try Self.classification(hypotheses, gold, metric: metric)) { $1 }
            }
        }
        return result
    }

    private static func classification<L: Hashable & Comparable & Sendable>(_ predicted: [L], _ expected: [L],
                                                                            metric: Metric) throws -> [String: Any] {
        let scores = try ClassificationScores(predictions: predicted, references: expected)
        if metric == .accuracy { return ["accuracy": scores.accuracy] }
        func json(_ label: L) -> Any { (label as? Int).map { $0 as Any } ?? "\(label)" }
        return [
            "accuracy": scores.accuracy,
            "micro": ["precision": scores.micro.precision, "recall": scores.micro.recall, "f1": scores.micro.f1],
            "macro": ["precision": scores.macro.precision, "recall": scores.macro.recall, "f1": scores.macro.f1],
            "per_class": scores.perLabel.map {
                ["label": json($0.label), "precision": $0.precision, "recall": $0.recall, "f1": $0.f1, "support": $0.support]
            },
        ]
    }

    /// The labels as integers when every one is an integer.
    private static func integers(_ labels: [String]) -> [Int]? {
        let values = labels.compactMap { Int($0) }
        return values.count == labels.count ? values : nil
    }

    /// The lines of a text file (a final newline ends the last line; "\r\n" counts as one break), or the JSON
    /// values of a .jsonl file (strings as they are, integers as their digits).
    static func lines(of path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else { throw MetricsError("\(path): cannot read") }
        guard let text = String(data: data, encoding: .utf8) else { throw MetricsError("\(path): not UTF-8 text") }
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
        if lines.last == "" { lines.removeLast() }
        lines = lines.map { $0.hasSuffix("\r") ? String($0.unicodeScalars.dropLast()) : $0 }
        guard path.hasSuffix(".jsonl") else { return lines }
        return try lines.enumerated().map { index, line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if let integer = Int(trimmed) { return String(integer) }
            if let string = try? JSONDecoder().decode(String.self, from: Data(trimmed.utf8)) { return string }
            throw MetricsError("\(path):\(index + 1): expected a JSON string or integer")
        }
    }
}
