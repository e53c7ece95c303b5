import Collie
import Foundation

/// A training step's time by op, per step: what `collie bench train --profile` prints.
struct StepBreakdown {
    /// One row: a name and its seconds per step.
    struct Row {
        var name: String
        var forward: Double
        var backward: Double
        var total: Double { forward + backward }
    }

    var rows: [Row]
    var stepSeconds: Double
    var gemmSeconds: Double
    var hookSeconds: Double
    var optimizerSeconds: Double

    /// Seconds per step that no op, hook or optimizer accounts for (zeroing gradients, reading the loss, …).
    var otherSeconds: Double {
        max(0, stepSeconds - rows.reduce(0) { $0 + $1.total } - hookSeconds - optimizerSeconds)
    }

    init(_ profile: OpProfile, steps: Int, stepSeconds: Double, optimizerSeconds: Double) {
        let n = Double(max(steps, 1))
        rows = profile.ops.map { Row(name: $0.name, forward: $0.forwardSeconds / n, backward: $0.backwardSeconds / n) }
        self.stepSeconds = stepSeconds
        gemmSeconds = profile.gemmSeconds / n
        hookSeconds = profile.hookSeconds / n
        self.optimizerSeconds = optimizerSeconds
    }

    var table: String {
        func percent(_ s: Double) -> String { String(format: "%5.1f%%", 100 * s / max(stepSeconds, 1e-12)) }
        func ms(_ s: Double) -> String { String(format: "%10.2f", 1e3 * s) }
        func name(_ text: String) -> String { text.padding(toLength: max(30, text.count), withPad: " ", startingAt: 0) }
        let blank = String(repeating: " ", count: 10)
        var lines = [name("op (ms per step)") + "    forward   backward   share"]
        for row in rows {
            lines.append(name(row.name) + " " + ms(row.forward) + " " + ms(row.backward) + "  " + percent(row.total))
        }
        for (label, seconds) in [("gradient hooks", hookSeconds), ("optimizer step", optimizerSeconds),
                                 ("other", otherSeconds)] {
            lines.append(name(label) + " " + blank + " " + ms(seconds) + "  " + percent(seconds))
        }
        lines.append("GEMM (BLAS calls from the step's thread, inside the ops above): "
                     + String(format: "%.2f ms per step, ", 1e3 * gemmSeconds) + percent(gemmSeconds)
                     + " of the step; everything else " + percent(stepSeconds - gemmSeconds))
        return lines.joined(separator: "\n")
    }

    var jsonObject: [String: Any] {
        [
            "ops": rows.map { ["name": $0.name, "forward_seconds": $0.forward, "backward_seconds": $0.backward] },
            "step_seconds_mean": stepSeconds, "gemm_seconds": gemmSeconds, "hook_seconds": hookSeconds,
            "optimizer_seconds": optimizerSeconds, "other_seconds": otherSeconds,
        ]
    }
}
