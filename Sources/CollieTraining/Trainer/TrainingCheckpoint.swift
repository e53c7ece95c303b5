import CollieIO
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A problem that stops training: a setting not supported, a checkpoint that does not fit the run, data the
/// model cannot read. The message names the config key or the file.
public struct TrainerError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// Training checkpoint folders in `output_dir`, written so that a crash never leaves a broken one.
///
/// A checkpoint `checkpoint-<step>/` holds the model as a Hugging Face folder (`config.json`,
/// `model.safetensors`, …: `collie generate --model` and transformers read it as is), `optimizer.json` +
/// `optimizer.safetensors`, `scheduler.json`, `callback-<name>.json` per callback with state, `config.yaml`
/// (the run's config) and, written last, `trainer_state.json`.
///
/// Writing goes to a hidden temporary folder next to the destination; every file is synced, then the folder,
/// then it is renamed into place and the parent folder is synced. Until the rename the previous checkpoint is
/// untouched, and an older folder is removed by first renaming it out of the way, so at every instant each
/// `checkpoint-<step>` folder is complete.
public enum TrainingCheckpoint {
    /// The file that marks a complete checkpoint (written last).
    public static let stateFileName = "trainer_state.json"
    /// The learning-rate schedule's file.
    public static let scheduleFileName = "scheduler.json"
    /// The run's config, for reference (resuming reads the config given on the command line).
    public static let configFileName = "config.yaml"
    /// Folder name prefix of training checkpoints.
    public static let folderPrefix = "checkpoint-"

    /// The folder name of the checkpoint after `step` updates.
    public static func folderName(step: Int) -> String { folderPrefix + String(step) }

    /// The complete checkpoints in `directory`, oldest (fewest steps) first.
    public static func checkpoints(in directory: URL) -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix(folderPrefix), let step = Int(name.dropFirst(folderPrefix.count)) else { return nil }
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.appendingPathComponent(stateFileName).path) else { return nil }
            return (step, url)
        }.sorted { $0.0 < $1.0 }.map { (step: $0.0, url: $0.1) }
    }

    /// The complete checkpoint with the most steps in `directory`.
    public static func latest(in directory: URL) -> URL? { checkpoints(in: directory).last?.url }

    /// Writes a folder at `destination` atomically: `body` fills a temporary folder, which is synced and renamed
    /// over `destination` (an existing folder there is moved aside first and removed after).
    public static func writeFolder(at destination: URL, _ body: (URL) throws -> Void) throws {
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

    /// Sleeps for a minute when the environment variable `COLLIE_TEST_PAUSE_WRITING` names `destination`'s folder
    /// (`checkpoint-8`), so that a test can kill the process in the middle of writing it. Does nothing otherwise.
    public static func pauseIfRequested(writing destination: URL) {
        guard ProcessInfo.processInfo.environment["COLLIE_TEST_PAUSE_WRITING"] == destination.lastPathComponent else { return }
        Thread.sleep(forTimeInterval: 60)
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

    /// Removes what interrupted writes left in `directory` (hidden `.partial-` and `.deleting-` folders).
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
