import Collie
import Foundation

/// The machine's arithmetic peaks for MFU: measured once per CPU, instruction and thread count, then read from a
/// cache file ($XDG_CACHE_HOME/collie/peak.json, else ~/.cache/collie/peak.json). A missing or unreadable cache is
/// measured again; a cache that cannot be written only costs the measurement next time.
enum MachinePeak {
    /// One peak: GFLOP/s and whether it came from the cache.
    struct Value {
        var gflops: Double
        var cached: Bool
    }

    static var cacheFile: URL {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("collie").appendingPathComponent("peak.json")
    }

    /// The key of a measurement: the CPU's name, family and model from /proc/cpuinfo, the instruction, the threads.
    static func key(_ peak: ArithmeticPeak, threads: Int) -> String {
        let field = { (name: String) in HostInfo.cpuinfo(name) ?? "?" }
        return "\(field("model name")) (family \(field("cpu family")) model \(field("model")))|\(peak.rawValue)|\(threads)"
    }

    /// The peak GFLOP/s of `peak` on `threads` threads: cached, or measured (best of three 0.2 s runs: other work on
    /// the machine only lowers a run) and cached. nil where the CPU lacks the instruction.
    static func gflops(_ peak: ArithmeticPeak, threads: Int, remeasure: Bool = false) -> Value? {
        guard peak.isAvailable else { return nil }
        let k = key(peak, threads: threads)
        var cache = (try? Data(contentsOf: cacheFile)).flatMap { try? JSONDecoder().decode([String: Double].self, from: $0) } ?? [:]
        if !remeasure, let value = cache[k], value.isFinite, value > 0 { return Value(gflops: value, cached: true) }
        guard let best = (0..<3).compactMap({ _ in peak.measure(threads: threads, seconds: 0.2) }).max() else { return nil }
        cache[k] = best
        do {
            try FileManager.default.createDirectory(at: cacheFile.deletingLastPathComponent(), withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(encoder.encode(cache), to: cacheFile)
        } catch {
            progress("could not cache the measured peak in \(cacheFile.path): \(error)")
        }
        return Value(gflops: best, cached: false)
    }
}
