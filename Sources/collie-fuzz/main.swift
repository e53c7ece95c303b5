// collie-fuzz TARGET [ARGUMENT...]
//
// In a normal build, replays inputs: every ARGUMENT is a file, or a folder whose files are each one input, fed to
// TARGET in this process; a crash is a defect, an error is not. Built by scripts/fuzz.sh (with
// `-sanitize=fuzzer,address -DCOLLIE_LIBFUZZER`), it runs libFuzzer on TARGET instead, passing the ARGUMENTs
// (libFuzzer flags and corpus folders) through. `collie-fuzz --list` prints the targets. See docs/FUZZING.md.
import CollieFuzzing
import Foundation

/// The target libFuzzer's callback feeds (a C callback cannot capture it).
nonisolated(unsafe) var selectedTarget = FuzzTarget.safetensorsHeader

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("collie-fuzz: \(message)\n".utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    fail("usage: collie-fuzz TARGET [FILE|FOLDER|libFuzzer flag...]; targets: "
         + FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))
}
if arguments[1] == "--list" {
    for target in FuzzTarget.allCases { print(target.rawValue) }
    exit(0)
}
// libFuzzer's fork mode runs this program again with the flags alone: the target comes through the environment.
let targetVariable = "COLLIE_FUZZ_TARGET"
let inherited = ProcessInfo.processInfo.environment[targetVariable].flatMap(FuzzTarget.init(rawValue:))
let named = FuzzTarget(rawValue: arguments[1])
guard let target = named ?? inherited else {
    fail("unknown target '\(arguments[1])'; targets: " + FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))
}
setenv(targetVariable, target.rawValue, 1)
selectedTarget = target
let inputArguments = arguments.dropFirst(named == nil ? 1 : 2)
atexit { FuzzTarget.removeScratchFiles() }

#if COLLIE_LIBFUZZER
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

// libFuzzer sees `collie-fuzz ARGUMENT...`, the target name taken out (and kept in COLLIE_FUZZ_TARGET).
var driverArguments = [arguments[0]] + inputArguments
var cArguments: [UnsafeMutablePointer<CChar>?] = driverArguments.map { strdup($0) } + [nil]
var argc = CInt(driverArguments.count)
let status = cArguments.withUnsafeMutableBufferPointer { buffer in
    var argv = buffer.baseAddress
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        _ = selectedTarget.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
        return 0
    }
}
exit(status)
#else
// The fuzz run's limits, roughly: an input over 5 s is a hang (SIGALRM ends the process), and a process may map
// 2 GB (libFuzzer's 1 GB counts resident memory, which a replay without AddressSanitizer cannot watch), so a
// regression input that would exhaust memory fails fast instead of taking the machine.
let secondsPerInput: UInt32 = 5
var addressSpace = rlimit(rlim_cur: 2 << 30, rlim_max: 2 << 30)
#if os(Linux)
let addressSpaceResource = __rlimit_resource_t(RLIMIT_AS.rawValue)
#else
let addressSpaceResource = RLIMIT_AS
#endif
if setrlimit(addressSpaceResource, &addressSpace) != 0 { fail("cannot limit the address space") }
var count = 0
for path in inputArguments {
    let url = URL(fileURLWithPath: path)
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { fail("no such file: \(path)") }
    let files = isFolder.boolValue
        ? ((try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
        : [url]
    for file in files {
        guard let input = try? Data(contentsOf: file) else { fail("cannot read \(file.path)") }
        alarm(secondsPerInput)
        defer { alarm(0) }
        if let error = target.run([UInt8](input)) {
            print("\(target.rawValue): rejected \(file.path): \(String(describing: error).prefix(300))")
        } else {
            print("\(target.rawValue): accepted \(file.path)")
        }
        count += 1
    }
}
print("\(target.rawValue): \(count) inputs, no crash")
#endif
