import CBLAS
import Foundation

/// Keeps OpenBLAS off its generic fallback kernel.
///
/// OpenBLAS picks its GEMM kernel from the CPU model when it loads. Debian's 0.3.21 does not know
/// recent CPUs and falls back to "Prescott" (SSE3), about 4× slower than its AVX2 "Haswell"
/// kernel on the same machine. The choice can only be changed through `OPENBLAS_CORETYPE` before
/// the library loads, so when it is unset, OpenBLAS reports Prescott, and the CPU has AVX2 and
/// FMA, `collie` re-executes itself once with `OPENBLAS_CORETYPE=Haswell` — the kernel this
/// project's own machines are configured with. A value the user set is always respected.
enum BLASKernel {
    static func avoidGenericFallback() {
        #if os(Linux)
        let environment = ProcessInfo.processInfo.environment
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["COLLIE_BLAS_REEXEC"] == nil,
              let name = openblas_get_corename(), String(cString: name) == "Prescott",
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              flags.contains(" avx2"), flags.contains(" fma") else { return }
        setenv("OPENBLAS_CORETYPE", "Haswell", 1)
        setenv("COLLIE_BLAS_REEXEC", "1", 1)   // never loop
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // execv returned: carry on with the fallback kernel.
        #endif
    }
}
