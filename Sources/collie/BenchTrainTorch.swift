import ArgumentParser
import Collie
import Foundation

/// `collie bench train --torch`: issue 18's protocol in one command — Collie's timed steps and PyTorch + transformers'
/// on the same configuration, alternated round by round, each side in a fresh process (so neither inherits the other's
/// warm caches or heap), and the speed ratio of each round. Alternating matters on a shared host, where the speed a
/// process gets moves by tens of percent within minutes: only a pair run back to back is a ratio. The machine's peak is
/// also measured (0.2 s) before, between and after the two runs of a round, and each round's ratio is given again
/// normalized by it — each side's speed per GFLOP/s of arithmetic the host gave it (the mean of the samples around its
/// run) — for rounds where the host changed pace between the two.
extension Bench.Train {
    /// One side of one round, as its child printed it.
    struct SideResult {
        var stepSeconds: Double
        var peakRSSBytes: Double
        var losses: [Double]
        /// Collie only: MFU against the cached peak and against the peak measured beside its steps.
        var mfu: Double?
        var mfuBesideSteps: Double?
        /// The whole JSON object, for `--json`.
        var object: [String: Any]

        /// Reads the last JSON line of a child's output; `name` names the child in errors.
        init(output: Data, name: String) throws {
            let object = try ChildProcess.lastJSONObject(output, from: name)
            func number(_ key: String) -> Double? { (object[key] as? NSNumber)?.doubleValue }
            guard let step = number("step_seconds_median"), step.isFinite, step > 0 else {
                throw ValidationError("\(name)'s result has no positive step_seconds_median: \(object)")
            }
            stepSeconds = step
            peakRSSBytes = number("peak_rss_bytes") ?? 0
            losses = (object["losses"] as? [NSNumber])?.map(\.doubleValue) ?? []
            mfu = number("mfu")
            mfuBesideSteps = number("mfu_beside_steps")
            self.object = object
        }
    }

    static let torchScript = "scripts/bench/bench_train_torch.py"

    /// The options both sides share, as command-line arguments.
    private var sharedArguments: [String] {
        ["--preset", preset.rawValue, "--steps", String(steps), "--mixed-precision", mixedPrecision.rawValue, "--json"]
            + (length.map { ["--length", String($0)] } ?? [])
    }

    func runAlternated() throws {
        guard FileManager.default.fileExists(atPath: Self.torchScript) else {
            throw ValidationError("--torch needs \(Self.torchScript) (run from the repository root)")
        }
        let cpu = HostInfo.cpuinfo("model name") ?? "?"
        if !json {
            print("collie bench train --preset \(preset.rawValue) --torch: \(rounds) rounds of Collie then PyTorch, each in a "
                  + "fresh process, \(steps) timed steps each (\(cpu), \(Parallel.threadCount) threads, mixed precision "
                  + "\(mixedPrecision.rawValue))")
        }
        let hostPeak = { peakKind?.measure(threads: Parallel.threadCount, seconds: 0.2) }
        var pairs: [Pair] = []
        for round in 1...rounds {
            let before = hostPeak()
            let collie = try SideResult(
                output: ChildProcess.output(ChildProcess.collie, ["bench", "train"] + sharedArguments), name: "collie bench train")
            let between = hostPeak()
            let torch = try SideResult(
                output: ChildProcess.output("/usr/bin/env", ["python3", Self.torchScript, "--threads", String(Parallel.threadCount)]
                                                + sharedArguments),
                name: Self.torchScript)
            let after = hostPeak()
            let mean = { (a: Double?, b: Double?) in a.flatMap { a in b.map { (a + $0) / 2 } } }
            let pair = Pair(collie: collie, torch: torch, colliePeak: mean(before, between), torchPeak: mean(between, after))
            pairs.append(pair)
            if !json { print(row(round, pair)) }
        }
        let speedups = pairs.map(\.speedup)
        if json {
            var object: [String: Any] = [
                "preset": preset.rawValue, "cpu": cpu, "threads": Parallel.threadCount,
                "mixed_precision": mixedPrecision.rawValue, "speedups": speedups,
                "rounds": pairs.map { pair -> [String: Any] in
                    var round: [String: Any] = ["collie": pair.collie.object, "torch": pair.torch.object]
                    if let c = pair.colliePeak, let t = pair.torchPeak { round["host_peak_gflops"] = ["collie": c, "torch": t] }
                    return round
                },
            ]
            let normalized = pairs.compactMap(\.normalizedSpeedup)
            if normalized.count == pairs.count { object["normalized_speedups"] = normalized }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print(String(format: "Collie / PyTorch speed: %.2f–%.2f× over %d rounds", speedups.min()!, speedups.max()!, rounds))
        let normalized = pairs.compactMap(\.normalizedSpeedup)
        if normalized.count == pairs.count {
            print(String(format: "normalized by the host's peak around each run: %.2f–%.2f×", normalized.min()!, normalized.max()!))
        }
        let last = pairs[pairs.count - 1]
        func losses(_ side: SideResult) -> String {
            guard let first = side.losses.first, let final = side.losses.last else { return "none" }
            return String(format: "%.4f → %.4f", first, final)
        }
        print("losses (round \(rounds)): Collie \(losses(last.collie)), PyTorch \(losses(last.torch))")
    }

    /// One round: both sides' results and the host's peak around each side's run (nil without a vector FMA to measure).
    struct Pair {
        var collie: SideResult
        var torch: SideResult
        var colliePeak: Double?
        var torchPeak: Double?

        /// PyTorch's step time over Collie's.
        var speedup: Double { torch.stepSeconds / collie.stepSeconds }
        /// The same with each side's speed per GFLOP/s of peak the host gave its run.
        var normalizedSpeedup: Double? {
            guard let colliePeak, let torchPeak, colliePeak > 0, torchPeak > 0 else { return nil }
            return (torch.stepSeconds * torchPeak) / (collie.stepSeconds * colliePeak)
        }
    }

    /// One round's line: both step times, the ratio, Collie's MFU (cached peak; beside its steps), both peaks RSS, and
    /// the host's peak around each run with the ratio normalized by it.
    private func row(_ round: Int, _ pair: Pair) -> String {
        let percent = { (value: Double?) in value.map { String(format: "%.1f%%", 100 * $0) } ?? "n/a" }
        var text = String(format: "round %d: Collie %.3f s/step, PyTorch %.3f s/step: %.2f× | Collie MFU %@ (beside its steps %@) "
                          + "| peak RSS %.2f / %.2f GB",
                          round, pair.collie.stepSeconds, pair.torch.stepSeconds, pair.speedup, percent(pair.collie.mfu),
                          percent(pair.collie.mfuBesideSteps), pair.collie.peakRSSBytes / 1e9, pair.torch.peakRSSBytes / 1e9)
        if let c = pair.colliePeak, let t = pair.torchPeak, let normalized = pair.normalizedSpeedup {
            text += String(format: " | host peak %.0f / %.0f GFLOP/s: %.2f× normalized", c, t, normalized)
        }
        return text
    }
}
