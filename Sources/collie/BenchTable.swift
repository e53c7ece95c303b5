import Collie
import Foundation

// Timing loops and plain-text tables shared by the `collie bench` subcommands.

/// Progress lines go to standard error so that `--json` output stays clean.
func progress(_ message: String) {
    ConsoleOutput.standardError("· \(message)\n")
}

/// Wall-clock timing for benchmarks: a monotonic clock, medians, and the warm-up-then-repeat loops.
enum Timing {
    /// Nanoseconds of a monotonic clock.
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Seconds since `start`, a value of `now()`.
    static func seconds(since start: UInt64) -> Double { Double(now() - start) / 1e9 }

    /// The median; the mean of the two middle values for an even count.
    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Median seconds of `body` over `repeats` runs after one warm-up; `prepare` runs untimed before each.
    static func measure(repeats: Int, prepare: () -> Void = {}, _ body: () throws -> Void) rethrows -> Double {
        prepare(); try body()
        var times: [Double] = []
        for _ in 0..<repeats {
            prepare()
            let start = now()
            try body()
            times.append(seconds(since: start))
        }
        return median(times)
    }

    /// Like `measure` for two bodies run alternately, so both see the same machine conditions.
    static func measurePair(repeats: Int, prepareFirst: () -> Void = {}, _ first: () -> Void,
                            _ second: () -> Void) -> (Double, Double) {
        withoutActuallyEscaping(first) { first in
            withoutActuallyEscaping(second) { second in
                let times = measureRoundRobin(repeats: repeats, prepareFirst: prepareFirst, [first, second])
                return (times[0], times[1])
            }
        }
    }

    /// Median seconds of each body over `repeats` rounds (after one warm-up round), the bodies taking turns within
    /// each round so all see the same machine conditions; `prepareFirst` runs untimed before the first body. With
    /// `warmEach`, each body also runs once untimed right before its timed run: a body then finds the threads and
    /// caches as it left them, not as the body before it did (a short product timed right after OpenBLAS's ran 10–25%
    /// slower than right after its own, on a Zen 2).
    static func measureRoundRobin(repeats: Int, prepareFirst: () -> Void = {}, warmEach: Bool = false,
                                  _ bodies: [() -> Void]) -> [Double] {
        prepareFirst()
        for body in bodies { body() }
        var times = [[Double]](repeating: [], count: bodies.count)
        for _ in 0..<repeats {
            prepareFirst()
            for (index, body) in bodies.enumerated() {
                if warmEach { body() }
                let start = now()
                body()
                times[index].append(seconds(since: start))
            }
        }
        return times.map(median)
    }
}

/// Left-aligns the first column and right-aligns the rest.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    let widths = (0..<header.count).map { column in all.map { $0[column].count }.max() ?? 0 }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            let pad = String(repeating: " ", count: widths[i] - cell.count)
            return i == 0 ? cell + pad : pad + cell
        }.joined(separator: "  ")
    }
    print(line(header))
    print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
    for row in rows { print(line(row)) }
}

/// `value` with `decimals` digits after the point, for table cells.
func fmt(_ value: Double, _ decimals: Int = 1) -> String { String(format: "%.\(decimals)f", value) }
