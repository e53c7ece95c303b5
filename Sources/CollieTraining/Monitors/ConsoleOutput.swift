import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writing to standard output or standard error without ever ending the process.
///
/// `FileHandle.write(_:)` traps when the write fails (a full disk, `> /dev/full`); a log line that cannot be written
/// must not cost a training run everything since its last checkpoint. These writes are best effort: a failure is
/// dropped. (`collie train` also ignores SIGPIPE, so a closed pipe is a failed write too.)
public enum ConsoleOutput {
    /// Writes `text` to standard output; false when it could not be written (whole).
    @discardableResult
    public static func standardOutput(_ text: String) -> Bool { write(text, to: STDOUT_FILENO) }

    /// Writes `text` to standard error; false when it could not be written (whole).
    @discardableResult
    public static func standardError(_ text: String) -> Bool { write(text, to: STDERR_FILENO) }

    private static func write(_ text: String, to descriptor: Int32) -> Bool {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            #if canImport(Glibc)
            let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            #else
            let written = bytes.withUnsafeBytes { Darwin.write(descriptor, $0.baseAddress, $0.count) }
            #endif
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return false }
            bytes = bytes.dropFirst(written)
        }
        return true
    }
}
