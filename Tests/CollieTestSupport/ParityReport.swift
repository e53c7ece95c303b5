import Foundation
import XCTest

/// Collects the comparisons of one case against reference values (a fixture model against transformers and torch)
/// and reports each failure and the largest differences seen, by kind (the first word of what was compared:
/// logits, loss, grad, param, losses).
public struct ParityReport {
    /// The case, named in every message.
    public let name: String
    private var failures: [String] = []
    /// Largest |difference| / max|expected| by kind.
    private var worst: [String: Double] = [:]

    public init(_ name: String) { self.name = name }

    /// `actual` within `relative × max|expected|` of `expected`, element by element (flattened values with their
    /// shapes); rows of the last axis where `keepRow` is false are skipped.
    public mutating func compare(_ actual: [Double], shape actualShape: [Int], _ expected: [Double], shape expectedShape: [Int],
                                 relative: Double, _ what: String, keepRow: (Int) -> Bool = { _ in true }) {
        guard actual.count == expected.count, actualShape == expectedShape || expected.count == 1 else {
            failures.append("\(what): shape \(actualShape), expected \(expectedShape)")
            return
        }
        let a = actual, e = expected
        let width = expectedShape.last ?? 1
        var scale = 0.0, difference = 0.0, at = 0
        for i in 0..<e.count where keepRow(i / Swift.max(width, 1)) {
            scale = Swift.max(scale, Swift.abs(e[i]))
            let d = Swift.abs(a[i] - e[i])
            if !(d <= difference) { difference = d; at = i }   // NaN counts as the worst
        }
        let ratio = scale > 0 ? difference / scale : difference
        let kind = String(what.split(separator: " ").first ?? "")
        worst[kind] = Swift.max(worst[kind] ?? 0, ratio.isNaN ? .infinity : ratio)
        if !(ratio <= relative) {
            failures.append("\(what): max |difference| \(difference) at element \(at) (\(a[at]) vs \(e[at])) is "
                            + "\(ratio) × max|expected| \(scale), above \(relative)")
        }
    }

    /// Prints the largest differences and fails the test once per failed comparison.
    public func finish(file: StaticString = #filePath, line: UInt = #line) {
        let summary = worst.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.2e", $0.value))" }
        print("[parity] \(name): max relative differences: " + summary.joined(separator: ", "))
        for failure in failures { XCTFail("\(name): \(failure)", file: file, line: line) }
    }
}
