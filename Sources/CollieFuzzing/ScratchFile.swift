import Foundation

/// A file per process that file-based loaders read fuzzer inputs from: in /dev/shm when there is one (no disk
/// writes at thousands of inputs a second), else in the temporary folder. Each input overwrites it.
enum ScratchFile {
    /// The file's folder, created once per process and named after the process id, so parallel fuzzers never share it.
    private static let folder: URL = {
        let shm = URL(fileURLWithPath: "/dev/shm", isDirectory: true)
        let base = FileManager.default.isWritableFile(atPath: shm.path) ? shm : FileManager.default.temporaryDirectory
        let folder = base.appendingPathComponent("collie-fuzz-\(ProcessInfo.processInfo.processIdentifier)",
                                                 isDirectory: true)
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }()

    /// Writes `bytes` to `name` in the scratch folder and returns its URL.
    static func write(_ bytes: [UInt8], as name: String) throws -> URL {
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// Removes the scratch folder (only files this process wrote are in it).
    static func removeAll() {
        try? FileManager.default.removeItem(at: folder)
    }
}
