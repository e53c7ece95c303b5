import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writing and removing folders so that a crash never leaves half a folder under its name (checkpoints,
/// saved models).
///
/// Writing fills a hidden temporary folder next to the destination (`.<name>.partial-<pid>`); every file in it
/// is synced, then the folder, then it is renamed into place and the parent is synced. Until the rename an
/// earlier folder of that name is untouched; it is removed by first renaming it aside
/// (`.<name>.deleting-<pid>`), so at every instant the folder under its name is complete.
public enum AtomicFolder {
    /// Writes a folder at `destination` atomically: `body` fills a temporary folder, which is synced and renamed
    /// over `destination` (an existing folder there is moved aside first and removed after).
    public static func write(at destination: URL, _ body: (URL) throws -> Void) throws {
        let parent = destination.deletingLastPathComponent()
        let fm = FileManager.default
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let pid = ProcessInfo.processInfo.processIdentifier
        let temporary = parent.appendingPathComponent(".\(destination.lastPathComponent).partial-\(pid)")
        try? fm.removeItem(at: temporary)
        try fm.createDirectory(at: temporary, withIntermediateDirectories: false)
        do {
            try body(temporary)
            try syncFolder(temporary)
            if fm.fileExists(atPath: destination.path) { try remove(destination) }
            guard rename(temporary.path, destination.path) == 0 else {
                throw CheckpointError(file: destination.path,
                                      "cannot move the finished folder into place (\(String(cString: strerror(errno))))")
            }
            try syncFolder(parent)
        } catch {
            try? fm.removeItem(at: temporary)
            throw error
        }
    }

    /// Removes a folder so that it never looks complete while half deleted: renamed to a hidden name, then deleted.
    public static func remove(_ folder: URL) throws {
        let aside = folder.deletingLastPathComponent()
            .appendingPathComponent(".\(folder.lastPathComponent).deleting-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: aside)
        guard rename(folder.path, aside.path) == 0 else {
            throw CheckpointError(file: folder.path, "cannot remove (\(String(cString: strerror(errno))))")
        }
        try FileManager.default.removeItem(at: aside)
    }

    /// Removes what interrupted writes and removals left in `directory` (hidden `.partial-` and `.deleting-`
    /// folders).
    public static func removeLeftovers(in directory: URL) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where name.hasPrefix(".") && (name.contains(".partial-") || name.contains(".deleting-")) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    /// Flushes a folder's entries (and, for a folder being finished, each file in it) to disk.
    static func syncFolder(_ folder: URL) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        for name in names {
            var isDirectory: ObjCBool = false
            let path = folder.appendingPathComponent(name).path
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
               !name.hasPrefix(".") {
                try sync(path: path, flags: O_RDONLY)
            }
        }
        try sync(path: folder.path, flags: O_RDONLY | O_DIRECTORY)
    }

    private static func sync(path: String, flags: Int32) throws {
        let descriptor = open(path, flags)
        guard descriptor >= 0 else {
            throw CheckpointError(file: path, "cannot open to sync (\(String(cString: strerror(errno))))")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw CheckpointError(file: path, "cannot sync (\(String(cString: strerror(errno))))")
        }
    }
}
