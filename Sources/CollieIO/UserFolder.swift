import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Creating a folder the user named for output (`collie convert --out`, a saved model or adapter), with errors in
/// Collie's words naming the path instead of Foundation's ("A file with the same name already exists.").
public enum UserFolder {
    /// Creates `url` and any missing parents as folders; an existing folder is fine.
    /// - Throws: `CheckpointError` naming the path when something else is there or the folder cannot be created.
    public static func create(_ url: URL) throws {
        var info = stat()
        if stat(url.path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw CheckpointError(file: url.path, "is \(InputFile.kind(info.st_mode)), not a folder")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            // Foundation wraps the POSIX error; its code says what went wrong.
            let underlying = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? Error).map { $0 as NSError }
            let reason = underlying.flatMap { $0.domain == NSPOSIXErrorDomain ? String(cString: strerror(Int32($0.code))) : nil }
                ?? error.localizedDescription
            throw CheckpointError(file: url.path, "cannot be created as a folder (\(reason))")
        }
    }
}
