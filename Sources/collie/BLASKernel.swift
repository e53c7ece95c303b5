import CBLAS
import Foundation

/// Keeps OpenBLAS off its generic fallback kernel.
///
/// OpenBLAS picks its GEMM kernel from the CPU model when it loads. Debian's 0.3.21 does not know
/// recent CPUs and falls back to "Prescott" (SSE3), about 4× slower than its AVX2 "Haswell"
/// kernel on the same machine and 8× slower than its AVX-512 "SkylakeX" kernel. The choice can
/// only be changed through `OPENBLAS_CORETYPE` before the library loads, so when it is unset and
/// OpenBLAS reports Prescott, `collie` re-executes itself once with `OPENBLAS_CORETYPE` set:
/// SkylakeX on Intel CPUs with AVX-512 (F, BW, DQ, VL) — the full test suite passes with it on
/// such a machine — and Haswell on any other CPU with AVX2 and FMA (0.3.21's AVX-512 kernels are
/// not trusted on other vendors' CPUs). A value the user set is always respected.
enum BLASKernel {
    static func avoidGenericFallback() {
        #if os(Linux)
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["COLLIE_BLAS_REEXEC"] == nil,
              let name = openblas_get_corename(), String(cString: name) == "Prescott",
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return }
        let flags = Set(flagLine.split(separator: " ").map(String.init))
        let intel = cpuinfo.contains("GenuineIntel")
        let kernel: String
        if intel && flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) {
            kernel = "SkylakeX"
        } else if flags.isSuperset(of: ["avx2", "fma"]) {
            kernel = "Haswell"
        } else {
            return
        }
        setenv("OPENBLAS_CORETYPE", kernel, 1)
        setenv("COLLIE_BLAS_REEXEC", "1", 1)   // never loop
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv returned: carry on with the fallback kernel.
        #endif
    }
}
