import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Shows training progress: a progress bar redrawn in place on a terminal, plain log lines
/// otherwise (a file, a pipe, CI).
///
/// On a terminal one line is rewritten with `\r` after every step:
///
///     step 120/1000 [##......................]  12% | loss 2.3456 | lr 3.00e-04 | 1.2k tok/s | ETA 7:45
///
/// Elsewhere it prints one line every `logInterval` steps (and at the last one), with the same
/// fields plus the gradient norm, step time and peak memory. Evaluations and checkpoints are
/// printed on their own lines in both modes. The ETA is the remaining steps times the mean step
/// time so far.
public final class ProgressMonitor: TrainingMonitor {
    /// Whether the bar is redrawn in place (true on a terminal).
    public let isTerminal: Bool
    /// Steps between plain log lines when not on a terminal.
    public let logInterval: Int
    private let barWidth: Int
    private let write: (String) -> Void
    private var totalSteps: Int?
    private var stepsTimed = 0
    private var secondsTimed = 0.0
    private var lineOpen = false
    private var closed = false

    /// A monitor writing through `write`. `totalSteps` may also come from `.started` or the steps.
    public init(totalSteps: Int? = nil, isTerminal: Bool, logInterval: Int = 1, barWidth: Int = 24,
                write: @escaping (String) -> Void) {
        precondition(logInterval >= 1, "logInterval must be at least 1")
        self.totalSteps = totalSteps
        self.isTerminal = isTerminal
        self.logInterval = logInterval
        self.barWidth = barWidth
        self.write = write
    }

    /// A monitor on standard output, drawing a bar when standard output is a terminal (`isatty`). Writes are best
    /// effort (`ConsoleOutput`): a full disk or a closed pipe never ends training.
    public convenience init(totalSteps: Int? = nil, logInterval: Int = 1) {
        self.init(totalSteps: totalSteps, isTerminal: isatty(STDOUT_FILENO) != 0, logInterval: logInterval) { text in
            ConsoleOutput.standardOutput(text)
        }
    }

    public func record(_ event: TrainingEvent) throws {
        guard !closed else { return }
        switch event {
        case .started(let step, let total):
            if let total { totalSteps = total }
            message(step > 0 ? "resuming at step \(step)" + (total.map { " of \($0)" } ?? "") : nil)
        case .step(let s):
            if let total = s.totalSteps { totalSteps = total }
            stepsTimed += 1
            secondsTimed += s.stepSeconds
            if isTerminal {
                write("\r" + barLine(s) + "\u{1B}[K")
                lineOpen = true
            } else if s.step % logInterval == 0 || s.step == totalSteps {
                write(plainLine(s) + "\n")
            }
        case .evaluation(let step, let metrics):
            let fields = metrics.sorted { $0.key < $1.key }.map { "\($0.key) \(Self.format($0.value))" }
            message("eval step \(step) | " + fields.joined(separator: " | "))
        case .checkpoint(let step, let path):
            message("checkpoint step \(step) → \(path)")
        case .finished(let step):
            message("finished at step \(step)")
        }
    }

    public func close() throws {
        guard !closed else { return }
        if lineOpen { write("\n") }
        lineOpen = false
        closed = true
    }

    /// Ends an open bar line, then writes `text` on its own line.
    private func message(_ text: String?) {
        if lineOpen { write("\n"); lineOpen = false }
        if let text { write(text + "\n") }
    }

    // MARK: - Lines

    func barLine(_ s: TrainingStep) -> String {
        var parts: [String] = []
        if let total = totalSteps, total > 0 {
            let fraction = min(1, max(0, Double(s.step) / Double(total)))
            let filled = Int((fraction * Double(barWidth)).rounded(.down))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled)
            parts.append("step \(s.step)/\(total) [\(bar)] " + String(format: "%3d%%", Int(fraction * 100)))
        } else {
            parts.append("step \(s.step)")
        }
        parts.append("loss \(Self.format(s.loss))")
        parts.append("lr " + String(format: "%.2e", s.learningRate))
        parts.append(Self.compact(s.tokensPerSecond) + " tok/s")
        if let eta = eta(after: s.step) { parts.append("ETA " + Self.duration(eta)) }
        return parts.joined(separator: " | ")
    }

    func plainLine(_ s: TrainingStep) -> String {
        var parts = ["step \(s.step)" + (totalSteps.map { "/\($0)" } ?? ""), "epoch \(s.epoch)",
                     "loss \(Self.format(s.loss))", "lr " + String(format: "%.2e", s.learningRate)]
        if let norm = s.gradientNorm { parts.append("grad norm \(Self.format(norm))") }
        parts.append(String(format: "%.0f tok/s", s.tokensPerSecond))
        parts.append(String(format: "%.3f s/step", s.stepSeconds))
        if s.peakMemoryBytes > 0 { parts.append(String(format: "peak %.2f GiB", Double(s.peakMemoryBytes) / Double(1 << 30))) }
        if let eta = eta(after: s.step) { parts.append("ETA " + Self.duration(eta)) }
        return parts.joined(separator: " | ")
    }

    /// Seconds left: remaining steps × mean step time so far.
    private func eta(after step: Int) -> Double? {
        guard let total = totalSteps, stepsTimed > 0 else { return nil }
        return Double(max(0, total - step)) * secondsTimed / Double(stepsTimed)
    }

    /// Four significant digits ("2.346", "0.0001235", "1.235e+04").
    static func format(_ value: Double) -> String { String(format: "%.4g", value) }

    /// 950, 1.2k, 3.4M.
    static func compact(_ value: Double) -> String {
        if value >= 1e6 { return String(format: "%.1fM", value / 1e6) }
        if value >= 1e3 { return String(format: "%.1fk", value / 1e3) }
        return String(format: "%.0f", value)
    }

    /// "m:ss", or "h:mm:ss" from an hour on.
    static func duration(_ seconds: Double) -> String {
        // Far-off (or non-finite) times read "?" rather than trap converting to Int.
        guard seconds.isFinite, seconds >= 0, seconds < 1e12 else { return "?" }
        let total = Int(seconds.rounded())
        let h = total / 3600, m = (total % 3600) / 60, s = total % 60
        return h > 0 ? String(format: "%d:%02d:%02d", h, m, s) : String(format: "%d:%02d", m, s)
    }
}
