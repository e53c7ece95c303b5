import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opening files whose paths come from a user or from another file (model folders, adapters, chat templates):
/// only regular files are read, so a FIFO cannot hang the reader and a device cannot feed it endless bytes, and
/// every failure is a `CheckpointError` in Collie's words naming the path.
///
/// Symbolic links are followed: Hugging Face's cache links each file of a snapshot folder to a blob outside it,
/// and the user chose that folder. Names read from inside a folder (an index's shard names) are confined to it
/// by `file(named:in:listedIn:)`.
public enum InputFile {
    /// The most bytes `contents(of:limit:)` reads by default: far more than any config or template.
    public static let defaultLimit = 64 << 20

    /// An open descriptor of the regular file at `path` and its size; the caller closes it.
    /// - Throws: `CheckpointError` when the path does not exist, cannot be read, or is not a regular file.
    public static func open(_ path: String) throws -> (descriptor: Int32, size: Int) {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        let descriptor = openForReading(path)
        guard descriptor >= 0 else { throw CheckpointError(file: path, problem(errno)) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let error = errno
            close(descriptor)
            throw CheckpointError(file: path, problem(error))
        }
        guard info.st_mode & S_IFMT == S_IFREG, let size = Int(exactly: info.st_size) else {
            close(descriptor)
            throw CheckpointError(file: path, "is \(kind(info.st_mode)), not a regular file")
        }
        return (descriptor, size)
    }

    /// The bytes of the regular file at `url`, at most `limit` of them.
    /// - Throws: `CheckpointError` naming the path when it cannot be opened (see `open(_:)`), read, or is larger
    ///   than `limit` bytes.
    public static func contents(of url: URL, limit: Int = defaultLimit) throws -> Data {
        let (descriptor, _) = try open(url.path)
        defer { close(descriptor) }
        // Read to the end rather than trusting st_size: /proc and similar files report 0.
        var data = Data()
        let chunk = 1 << 16
        var buffer = [UInt8](repeating: 0, count: chunk)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, chunk) }
            if count < 0 {
                if errno == EINTR { continue }
                throw CheckpointError(file: url.path, "cannot be read (\(String(cString: strerror(errno))))")
            }
            if count == 0 { return data }
            data.append(contentsOf: buffer[0..<count])
            if data.count > limit { throw CheckpointError(file: url.path, "is larger than \(limit) bytes") }
        }
    }

    /// Checks that `url` is an existing folder.
    /// - Throws: `CheckpointError` naming the path when it does not exist, cannot be read, or is not a folder.
    public static func checkFolder(_ url: URL) throws {
        var info = stat()
        guard stat(url.path, &info) == 0 else { throw CheckpointError(file: url.path, problem(errno)) }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw CheckpointError(file: url.path, "is \(kind(info.st_mode)), not a folder")
        }
    }

    /// Checks that `url` is an existing folder or regular file (a tokenizer is given as either).
    /// - Throws: `CheckpointError` naming the path when it does not exist, cannot be read, or is something else.
    public static func checkFileOrFolder(_ url: URL) throws {
        var info = stat()
        guard stat(url.path, &info) == 0 else { throw CheckpointError(file: url.path, problem(errno)) }
        guard [S_IFDIR, S_IFREG].contains(info.st_mode & S_IFMT) else {
            throw CheckpointError(file: url.path, "is \(kind(info.st_mode)), not a file or folder")
        }
    }

    /// The file `name` (as another file of the folder lists it) in `folder`.
    /// - Throws: `CheckpointError` naming `listedIn` when `name` is empty, absolute, or has a path separator,
    ///   `..` or a NUL: a listed file must be in the folder itself, never outside it.
    public static func file(named name: String, in folder: URL, listedIn: String) throws -> URL {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.contains("\0") else {
            throw CheckpointError(file: listedIn, "names the file '\(name)', which is not a file name in the model folder "
                                  + "(paths and '..' are refused)")
        }
        return folder.appendingPathComponent(name)
    }

    /// A phrase for an `errno` from opening or examining a path.
    static func problem(_ error: Int32) -> String {
        switch error {
        case ENOENT: "does not exist"
        case EACCES, EPERM: "cannot be read (permission denied)"
        case ENOTDIR: "does not exist (a part of the path is not a folder)"
        case ELOOP: "cannot be opened (too many levels of symbolic links)"
        case ENAMETOOLONG: "cannot be opened (the path is too long)"
        default: "cannot be opened (\(String(cString: strerror(error))))"
        }
    }

    /// What kind of file `mode` describes, as a noun phrase.
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a folder"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFREG: "a regular file"
        default: "an unusual file"
        }
    }
}

/// open(2) for reading without blocking (outside `InputFile`, whose `open` would shadow it).
private func openForReading(_ path: String) -> Int32 { open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) }
