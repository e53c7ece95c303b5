import CCollieKernels
import CollieTestSupport
import Foundation
import XCTest

/// `collie bench train --profile --json` reports MFU against the machine's measured peak, cached per CPU in
/// $XDG_CACHE_HOME/collie/peak.json (measured on the first run, read on the next), MFU against the peak measured again
/// beside each timed step, and the step's time by op.
final class BenchTrainCommandTests: XCTestCase {
    func testMFUAgainstTheCachedPeakAndTheStepsTimeByOp() throws {
        let folder = try temporaryFolder(for: self)
        let environment = ["XDG_CACHE_HOME": folder.path]
        func run() throws -> [String: Any] {
            let result = try CollieExecutable.run(["bench", "train", "--preset", "tiny", "--length", "16", "--steps", "2",
                                                   "--profile",
                                                   "--json"], in: folder, environment: environment)
            XCTAssertEqual(result.status, 0, result.errors)
            let line = try XCTUnwrap(result.output.split(separator: "\n").last { $0.hasPrefix("{") })
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        let first = try run()
        let cache = folder.appendingPathComponent("collie/peak.json")
        let cached = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: cache)) as? [String: Double])
        guard let peak = first["peak_gflops"] as? Double else {
            XCTAssertTrue(cached.isEmpty, "no float32 instruction, nothing cached")
            return
        }
        XCTAssertEqual(cached.count, 1)
        XCTAssertEqual(cached.values.first, peak, "the peak printed is the one cached")
        let gflops = try XCTUnwrap(first["gflops"] as? Double)
        XCTAssertEqual(try XCTUnwrap(first["mfu"] as? Double), gflops / peak, accuracy: 1e-12)
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted(), half = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2
        }
        let beside = try XCTUnwrap(first["peak_gflops_beside_steps"] as? [Double])
        XCTAssertEqual(beside.count, 2, "one sample after each timed step")
        XCTAssertTrue(beside.allSatisfy { $0 > 0 && $0 < 10 * peak }, "\(beside) against \(peak)")
        XCTAssertEqual(try XCTUnwrap(first["mfu_beside_steps"] as? Double), gflops / median(beside), accuracy: 1e-12)

        let profile = try XCTUnwrap(first["profile"] as? [String: Any])
        let ops = try XCTUnwrap(profile["ops"] as? [[String: Any]])
        let names = Set(ops.compactMap { $0["name"] as? String })
        XCTAssertTrue(names.isSuperset(of: ["linear", "rms_norm", "cross_entropy", "scaled_dot_product_attention"]), "\(names)")
        let step = try XCTUnwrap(profile["step_seconds_mean"] as? Double)
        let attributed = ops.reduce(0.0) { $0 + ($1["forward_seconds"] as! Double) + ($1["backward_seconds"] as! Double) }
        XCTAssertGreaterThan(attributed, 0)
        XCTAssertLessThanOrEqual(attributed, step)
        XCTAssertGreaterThan(try XCTUnwrap(profile["gemm_seconds"] as? Double), 0)
        XCTAssertGreaterThan(try XCTUnwrap(profile["optimizer_seconds"] as? Double), 0)

        // The second run reads the cached peak instead of measuring again; the samples beside its steps are measured.
        try JSONSerialization.data(withJSONObject: cached.mapValues { _ in 12345.0 }).write(to: cache)
        let second = try run()
        XCTAssertEqual(second["peak_gflops"] as? Double, 12345)
        let besideSecond = try XCTUnwrap(second["peak_gflops_beside_steps"] as? [Double])
        XCTAssertTrue(besideSecond.allSatisfy { $0 > 0 && $0 < 10 * peak }, "\(besideSecond): measured, not the cache")
    }

    /// `--torch` alternates Collie's steps with PyTorch's script round by round, each in a fresh process with the same
    /// preset, length, steps, precision and threads, and reports each round's speed ratio. A stand-in `python3` on PATH
    /// plays the script here (it records its arguments and prints a result), so the test needs no PyTorch.
    func testTorchAlternatesRoundsAndReportsEachRatio() throws {
        let folder = try temporaryFolder(for: self)
        let bin = folder.appendingPathComponent("bin"), log = folder.appendingPathComponent("python-arguments.txt")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let python = bin.appendingPathComponent("python3")
        try """
            #!/bin/sh
            echo "$@" >> "\(log.path)"
            echo 'torch bench train: a line of text first'
            echo '{"step_seconds_median": 4.0, "peak_rss_bytes": 1500000000, "losses": [10.5, 10.25]}'
            """.write(to: python, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: python.path)
        let environment = ["XDG_CACHE_HOME": folder.path, "PATH": bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "")]
        let arguments = ["bench", "train", "--preset", "tiny", "--length", "16", "--steps", "1", "--torch", "--rounds", "2"]

        let missing = try CollieExecutable.run(arguments, in: folder, environment: environment)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.errors.contains("scripts/bench/bench_train_torch.py"), missing.errors)

        let script = folder.appendingPathComponent("scripts/bench/bench_train_torch.py")
        try FileManager.default.createDirectory(at: script.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data().write(to: script)
        let result = try CollieExecutable.run(arguments + ["--json"], in: folder, environment: environment)
        XCTAssertEqual(result.status, 0, result.errors)
        let line = try XCTUnwrap(result.output.split(separator: "\n").last { $0.hasPrefix("{") })
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let rounds = try XCTUnwrap(object["rounds"] as? [[String: [String: Any]]])
        let speedups = try XCTUnwrap(object["speedups"] as? [Double])
        XCTAssertEqual(rounds.count, 2)
        XCTAssertEqual(speedups.count, 2)
        for (round, speedup) in zip(rounds, speedups) {
            let collie = try XCTUnwrap(round["collie"]), torch = try XCTUnwrap(round["torch"])
            XCTAssertEqual(collie["sequence"] as? Int, 16, "Collie's side ran the same configuration")
            let step = try XCTUnwrap(collie["step_seconds_median"] as? Double)
            XCTAssertEqual(torch["step_seconds_median"] as? Double, 4.0)
            XCTAssertEqual(speedup, 4.0 / step, accuracy: 1e-12, "PyTorch's step time over Collie's")
        }
        if collie_kernel_level() >= 1 {   // a vector FMA to measure the host's peak with
            let normalized = try XCTUnwrap(object["normalized_speedups"] as? [Double])
            for (round, value) in zip(rounds, normalized) {
                let peaks = try XCTUnwrap(round["host_peak_gflops"] as? [String: Double])
                let collie = try XCTUnwrap(peaks["collie"]), torch = try XCTUnwrap(peaks["torch"])
                XCTAssertGreaterThan(collie, 0)
                XCTAssertGreaterThan(torch, 0)
                let step = try XCTUnwrap(round["collie"]?["step_seconds_median"] as? Double)
                XCTAssertEqual(value, 4.0 * torch / (step * collie), accuracy: 1e-9,
                               "each side's speed per GFLOP/s of the peak measured around its run")
            }
        }
        let threads = try XCTUnwrap(rounds[0]["collie"]?["threads"] as? Int)
        let calls = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(calls.count, 2, "one PyTorch run per round")
        for call in calls {
            XCTAssertEqual(call.split(separator: " ").map(String.init),
                           ["scripts/bench/bench_train_torch.py", "--threads", String(threads), "--preset", "tiny", "--steps", "1",
                            "--mixed-precision", "no", "--json", "--length", "16"])
        }

        try "#!/bin/sh\necho 'no result'\n".write(to: python, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: python.path)
        let silent = try CollieExecutable.run(arguments, in: folder, environment: environment)
        XCTAssertNotEqual(silent.status, 0)
        XCTAssertTrue(silent.errors.contains("printed no JSON result"), silent.errors)
    }

    /// COLLIE_KERNEL_LEVEL caps a process's kernels as a CPU without the higher instruction sets would run them: at
    /// level 1 (AVX2) MFU is against the AVX2 FMA peak; at level 0 (portable C) there is no peak to measure, and float32
    /// products stay on OpenBLAS. Values that are not one digit 0 ... 5 are ignored.
    func testKernelLevelFromTheEnvironmentCapsTheKernelsAndThePeak() throws {
        let folder = try temporaryFolder(for: self)
        let detected = Int(collie_kernel_level())
        func run(_ level: String) throws -> [String: Any] {
            let result = try CollieExecutable.run(["bench", "train", "--preset", "tiny", "--length", "16", "--steps", "1",
                                                   "--json"], in: folder,
                                                  environment: ["XDG_CACHE_HOME": folder.path, "COLLIE_KERNEL_LEVEL": level])
            XCTAssertEqual(result.status, 0, result.errors)
            let line = try XCTUnwrap(result.output.split(separator: "\n").last { $0.hasPrefix("{") })
            return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        let avx2 = try run("1")
        XCTAssertEqual(avx2["kernel_level"] as? Int, min(1, detected))
        XCTAssertEqual(avx2["peak_instruction"] as? String, detected >= 1 ? "fp32-avx2" : nil)
        let portable = try run("0")
        XCTAssertEqual(portable["kernel_level"] as? Int, 0)
        XCTAssertNil(portable["peak_instruction"], "no vector FMA at level 0")
        XCTAssertEqual(portable["float32_gemm"] as? String, "openblas")
        let portableLosses = try XCTUnwrap(portable["losses"] as? [Double]), avx2Losses = try XCTUnwrap(avx2["losses"] as? [Double])
        XCTAssertEqual(portableLosses.count, avx2Losses.count)
        for (a, b) in zip(portableLosses, avx2Losses) {   // the same step; float32 sums in another order
            XCTAssertEqual(a, b, accuracy: 1e-5 * abs(b), "every level trains the same losses")
        }
        XCTAssertEqual(try run("7")["kernel_level"] as? Int, detected, "out of range: ignored")
    }

    /// `collie bench parallel` runs each layout under mpirun: every layout trains the same losses, tensor and
    /// pipeline parallelism halve the model state (parameters, gradients, AdamW state) a rank holds, and ZeRO-3 over
    /// a dp group of 2 halves each stage's again.
    func testParallelLayoutsReportTheirStepTimeAndPerRankMemory() throws {
        let folder = try temporaryFolder(for: self)
        let result = try CollieExecutable.run(["bench", "parallel", "--preset", "tiny", "--length", "16", "--steps", "1",
                                               "--layouts", "1", "tp2", "pp2", "dp2pp2z3"], in: folder)
        XCTAssertEqual(result.status, 0, result.errors)
        let lines = result.output.split(separator: "\n").map(String.init)
        for (name, ratio) in [("1 process", "1.00"), ("dp 1 × tp 2 × pp 1", "0.50"), ("dp 1 × tp 1 × pp 2", "0.50"),
                              ("dp 2 × tp 1 × pp 2, ZeRO-3", "0.25")] {
            let row = try XCTUnwrap(lines.first { $0.hasPrefix("| \(name) |") }, result.output)
            XCTAssertTrue(row.hasSuffix("| \(ratio) |"), row)
        }
        let losses = Set(lines.filter { $0.hasPrefix("losses, ") }.map { $0.split(separator: ":").last! })
        XCTAssertEqual(losses.count, 1, "every layout trains the same losses:\n\(result.output)")
    }
}
