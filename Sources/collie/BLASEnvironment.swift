import CBLAS
import Foundation

/// The OpenBLAS settings `collie` restarts itself with, because OpenBLAS reads them only when it loads.
///
/// - **Its kernel.** OpenBLAS picks its GEMM kernel from the CPU model. Debian's 0.3.21 does not know recent CPUs and
///   falls back to "Prescott" (SSE3), about 4× slower than its AVX2 "Haswell" kernel on the same machine and 8× slower
///   than its AVX-512 "SkylakeX" kernel. When `OPENBLAS_CORETYPE` is unset and OpenBLAS reports Prescott, the restart
///   sets SkylakeX on Intel CPUs with AVX-512 (F, BW, DQ, VL) — the full test suite passes with it on such a machine —
///   and Haswell on any other CPU with AVX2 and FMA (0.3.21's AVX-512 kernels are not trusted on other vendors' CPUs).
/// - **Its idle threads.** After each product OpenBLAS's workers keep polling for a while before they sleep, taking
///   cores from the work between products (Collie's threads). When `OPENBLAS_THREAD_TIMEOUT` is unset (or empty) and
///   OpenBLAS runs more than one thread, the restart sets 4 (they sleep almost at once), as the scripts do: training steps
///   on OpenBLAS's float32 GEMM ran 4–9% faster with it on a Zen 5, steps on Collie's GEMM the same
///   (docs/PERFORMANCE.md).
///
/// At most one restart (`COLLIE_BLAS_REEXEC` names what it set, and any value prevents another); a value the user set
/// is always respected, and the library alone (`swift test`, your own programs) uses whatever the environment says.
enum BLASEnvironment {
    /// The variable that records the restart: the names it set, comma-separated.
    static let restartMarker = "COLLIE_BLAS_REEXEC"

    /// The variables to set before OpenBLAS loads again, for this process's environment and OpenBLAS as loaded.
    static func settings() -> [(name: String, value: String)] {
        #if os(Linux)
        let environment = ProcessInfo.processInfo.environment
        guard environment[restartMarker] == nil else { return [] }
        var settings: [(name: String, value: String)] = []
        if environment["OPENBLAS_CORETYPE"] == nil, let kernel = replacementForGenericKernel() {
            settings.append(("OPENBLAS_CORETYPE", kernel))
        }
        if environment["OPENBLAS_THREAD_TIMEOUT"]?.isEmpty ?? true, openblas_get_num_threads() > 1 {
            settings.append(("OPENBLAS_THREAD_TIMEOUT", "4"))
        }
        return settings
        #else
        return []
        #endif
    }

    /// Re-executes `collie` with `settings()` when there are any; returns only when there are none or exec failed
    /// (then it carries on as it is).
    static func restartIfNeeded() {
        #if os(Linux)
        let settings = settings()
        guard !settings.isEmpty else { return }
        for (name, value) in settings { setenv(name, value, 1) }
        setenv(restartMarker, settings.map(\.name).joined(separator: ","), 1)   // never loop
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        #endif
    }

    /// Whether the restart set `name` in this process.
    static func restartSet(_ name: String) -> Bool {
        ProcessInfo.processInfo.environment[restartMarker]?.split(separator: ",").contains { $0 == name } ?? false
    }

    /// SkylakeX or Haswell where OpenBLAS fell back to Prescott on a CPU with AVX-512 (Intel) or AVX2 + FMA.
    private static func replacementForGenericKernel() -> String? {
        guard let name = openblas_get_corename(), String(cString: name) == "Prescott",
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagLine.split(separator: " ").map(String.init))
        if cpuinfo.contains("GenuineIntel") && flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) {
            return "SkylakeX"
        }
        return flags.isSuperset(of: ["avx2", "fma"]) ? "Haswell" : nil
    }
}
