import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An advisory lock on a folder, so that two processes never write the same output folder at once.
///
/// It is `flock` on `<folder>/.collie.lock`, held as long as the value lives (and released by the kernel when the
/// process ends, even by SIGKILL, so a killed run never leaves a stale lock). The file holds the holder's process
/// id, for the message a second process gets. The file itself stays: removing a lock file while another process
/// may be opening it would let two processes hold "the" lock.
public final class FolderLock {
    /// The lock file's name in the folder.
    public static let fileName = ".collie.lock"

    /// The lock file.
    public let url: URL
    private let descriptor: Int32

    /// Takes the lock on `folder` (which must exist) without waiting.
    /// - Throws: `CheckpointError` naming the folder when another process holds it (with that process's id when
    ///   known) or the lock file cannot be opened.
    public init(folder: URL) throws {
        url = folder.appendingPathComponent(Self.fileName)
        let descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CheckpointError(file: folder.path, "cannot create the lock file \(Self.fileName) "
                                  + "(\(String(cString: strerror(errno))))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            close(descriptor)
            if reason == EWOULDBLOCK {
                let holder = (try? String(contentsOf: url, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                let who = holder.flatMap { Int32($0) }.map { "process \($0)" } ?? "another process"
                throw CheckpointError(file: folder.path, "in use by \(who) (it holds \(Self.fileName)); two runs "
                                      + "cannot share an output folder: wait for it to end or choose another")
            }
            throw CheckpointError(file: folder.path, "cannot lock \(Self.fileName) (\(String(cString: strerror(reason))))")
        }
        self.descriptor = descriptor
        let pid = Data("\(ProcessInfo.processInfo.processIdentifier)\n".utf8)
        if ftruncate(descriptor, 0) == 0 {
            _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        }
    }

    deinit { close(descriptor) }
}
