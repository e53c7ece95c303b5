import CBLAS
import Collie
import Foundation

/// The machine a benchmark runs on: its CPU, OpenBLAS's build and threads, the environment variables that steer
/// them, and how busy other processes kept the machine during the run.
struct HostInfo: Codable {
    var cpu: String
    var onlineProcessors: Int
    var openblasCoretype: String?
    var openblasNumThreads: String?
    var openblasL2Size: String?
    var openblasThreadTimeout: String?
    var collieNumThreads: String?
    /// Whether `collie` re-executed itself to set OPENBLAS_CORETYPE (it was unset in the caller's environment).
    var coretypeSetByCollie: Bool
    /// Whether `collie` re-executed itself to set OPENBLAS_THREAD_TIMEOUT (unset in the caller's environment).
    var threadTimeoutSetByCollie: Bool
    var parallelThreadCount: Int
    var openblasThreads: Int
    var openblasCore: String
    var openblasConfig: String
    var loadAverageBefore: String
    var loadAverageAfter: String?
    /// CPU time other processes used during the run, in % of one CPU (200% = both of 2 CPUs busy).
    var otherProcessesCPUPercent: Double?

    static func current() -> HostInfo {
        let environment = ProcessInfo.processInfo.environment
        return HostInfo(
            cpu: cpuinfo("model name") ?? "?", onlineProcessors: ProcessInfo.processInfo.activeProcessorCount,
            openblasCoretype: environment["OPENBLAS_CORETYPE"], openblasNumThreads: environment["OPENBLAS_NUM_THREADS"],
            openblasL2Size: environment["OPENBLAS_L2_SIZE"], openblasThreadTimeout: environment["OPENBLAS_THREAD_TIMEOUT"],
            collieNumThreads: environment["COLLIE_NUM_THREADS"],
            coretypeSetByCollie: BLASEnvironment.restartSet("OPENBLAS_CORETYPE"),
            threadTimeoutSetByCollie: BLASEnvironment.restartSet("OPENBLAS_THREAD_TIMEOUT"),
            parallelThreadCount: Parallel.threadCount, openblasThreads: Int(openblas_get_num_threads()),
            openblasCore: String(cString: openblas_get_corename()),
            openblasConfig: String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces),
            loadAverageBefore: loadAverage(), loadAverageAfter: nil, otherProcessesCPUPercent: nil)
    }

    /// The value of the first /proc/cpuinfo line whose key is `field` ("model name", "cpu family", "model"); nil
    /// where there is no such file or line.
    static func cpuinfo(_ field: String) -> String? {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == field {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// Machine-wide busy CPU seconds (/proc/stat: all but idle and iowait) and this process's own
    /// CPU seconds (itself and its waited-for children), to tell how busy others kept the machine.
    static func cpuSeconds() -> (machine: Double, own: Double, wall: Double) {
        let stat = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: "\n").first?.split(separator: " ").dropFirst().compactMap { Double($0) } ?? []
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var busy = 0.0
        for (i, value) in fields.prefix(8).enumerated() where i != 3 && i != 4 { busy += value }  // skip idle, iowait
        func seconds(_ who: Int32) -> Double {
            var usage = rusage()
            getrusage(__rusage_who_t(who), &usage)
            return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
                + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        }
        let own = seconds(RUSAGE_SELF.rawValue) + seconds(RUSAGE_CHILDREN.rawValue)
        return (busy / ticks, own, Double(Timing.now()) / 1e9)
    }

    static func othersPercent(since start: (machine: Double, own: Double, wall: Double)) -> Double {
        let end = cpuSeconds()
        let others = (end.machine - start.machine) - (end.own - start.own)
        return Swift.max(0, others) / Swift.max(end.wall - start.wall, 1e-9) * 100
    }

    static func loadAverage() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?"
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }
}
