import CollieEngine
import CollieIO
import CollieTraining
import Foundation
import XCTest

/// The torch / transformers reference values in `Fixtures/*.safetensors`, written by
/// scripts/fixtures/make_optimizer_fixtures.py (see its docstring for the key layout).
final class Fixture: Sendable {
    private let file: SafeTensorsFile

    /// Opens `Fixtures/<name>.safetensors` from the test bundle.
    init(_ name: String) {
        guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
            fatalError("Fixtures/\(name).safetensors is missing; run scripts/fixtures/make_optimizer_fixtures.py")
        }
        do { file = try SafeTensorsFile(url: url) } catch { fatalError("\(url.path): \(error)") }
    }

    /// Whether the fixture holds `key`.
    func has(_ key: String) -> Bool { file.entries[key] != nil }

    /// A fresh, writable copy of tensor `key`.
    func tensor(_ key: String) -> Tensor {
        do { return try file.tensor(key).contiguousCopy() } catch { fatalError("\(error)") }
    }

    /// A 0-d parameter saved as `<name>.p.<key>`.
    func double(_ name: String, _ key: String) -> Double { tensor("\(name).p.\(key)").doubles()[0] }

    /// The case names: the distinct prefixes before the first "." of every key.
    var caseNames: [String] {
        Set(file.names.map { String($0.prefix { $0 != "." }) }).sorted()
    }
}

/// The largest differences between computed and expected values over several tensors.
struct Difference: CustomStringConvertible {
    /// Largest |actual − expected|.
    private(set) var maxAbsolute = 0.0
    /// Largest |actual − expected| / max(|expected|, floor), with floor = 1e-3 × the tensor's
    /// largest magnitude (so entries near zero are judged against the tensor's scale).
    private(set) var maxRelative = 0.0

    mutating func compare(_ actual: Tensor, _ expected: Tensor) {
        XCTAssertEqual(actual.shape, expected.shape)
        let a = actual.doubles(), e = expected.doubles()
        let floor = 1e-3 * (e.map(abs).max() ?? 0)
        for (x, y) in zip(a, e) {
            let d = abs(x - y)
            maxAbsolute = max(maxAbsolute, d)
            maxRelative = max(maxRelative, d / max(abs(y), floor, .leastNormalMagnitude))
        }
    }

    mutating func merge(_ other: Difference) {
        maxAbsolute = max(maxAbsolute, other.maxAbsolute)
        maxRelative = max(maxRelative, other.maxRelative)
    }

    var description: String { String(format: "max abs %.3e, max rel %.3e", maxAbsolute, maxRelative) }
}

/// Runs `steps` steps of a fixture case (`name.after.<s>.<i>` holds the reference parameters after step s),
/// asserting each step's parameters within `tolerance` (relative, see `Difference`).
func checkSteps(_ name: String, in fixture: Fixture, steps: Int, tolerance: Double,
                optimizer: (Optimizer, [Tensor]), takeStep: (Int, Optimizer, [Tensor]) -> Void,
                file: StaticString = #filePath, line: UInt = #line) {
    let (optimizer, parameters) = optimizer
    var total = Difference()
    for step in 0..<steps {
        takeStep(step, optimizer, parameters)
        var difference = Difference()
        for (i, p) in parameters.enumerated() { difference.compare(p, fixture.tensor("\(name).after.\(step).\(i)")) }
        XCTAssertLessThan(difference.maxRelative, tolerance, "\(name) after step \(step + 1): \(difference)",
                          file: file, line: line)
        total.merge(difference)
    }
    print("\(name) parameters, \(steps) steps: \(total)")
}
