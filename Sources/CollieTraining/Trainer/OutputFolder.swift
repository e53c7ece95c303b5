import CollieIO
import Foundation

/// A training run's `output_dir` and the rules that keep a run from losing what it did not write.
///
/// - A folder `collie train` writes to gets a marker file, `.collie-output`. Only in a marked folder are the
///   entries under Collie's names (`checkpoint-<step>`, `final`, `best`, `base_model`, `tensorboard`,
///   `monitors.csv`, `monitors.evaluation.csv`, `config.yaml`) taken to be Collie's.
/// - A fresh run (no `--resume`) in a marked folder that holds an earlier run's outputs is refused; with
///   `--overwrite` those outputs (and only those) are removed, each one named, before training starts.
/// - A folder that exists, is not empty and has no marker is foreign: refused; with `--overwrite` Collie writes
///   into it but removes nothing, so it is still refused when it already holds entries under Collie's names.
///   `/`, the home folder and a foreign current directory are always refused.
/// - No file the run reads (model, tokenizer, data) may lie inside an entry under Collie's names: the run
///   replaces or removes those (the final model, rotated checkpoints), and a resumed run needs its model again.
/// - The folder is locked for the run (`FolderLock`), so a second run on it fails at once.
public struct OutputFolder {
    /// The marker file that says the folder is a Collie training output folder.
    public static let markerFileName = ".collie-output"
    /// The files and folders a training run writes in `output_dir`, besides `checkpoint-<step>` folders.
    public static let outputNames: Set<String> = [
        "final", LoadBestModelCallback.folderName, Trainer.baseModelFolderName, "tensorboard", "monitors.csv",
        "monitors.evaluation.csv", TrainingCheckpoint.configFileName,
    ]

    /// How a run starts.
    public enum Start: Equatable, Sendable {
        /// A new run; `overwrite` allows removing an earlier run's outputs.
        case fresh(overwrite: Bool)
        /// A run continued from a checkpoint: nothing is removed at start-up.
        case resume
    }

    /// The folder, as the config names it.
    public let url: URL

    public init(_ url: URL) { self.url = url }

    /// True when `name` is an entry Collie writes in an output folder.
    public static func isOutputName(_ name: String) -> Bool {
        outputNames.contains(name) || name.hasPrefix(TrainingCheckpoint.folderPrefix)
    }

    /// Whether the folder carries Collie's marker.
    public var isMarked: Bool {
        FileManager.default.fileExists(atPath: url.appendingPathComponent(Self.markerFileName).path)
    }

    /// The entries in the folder, without the marker and the lock file (empty when the folder does not exist).
    var entries: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.filter { $0 != Self.markerFileName && $0 != FolderLock.fileName }.sorted()
    }

    /// True when the folder exists, is not empty and has no marker: something other than `collie train` made it.
    public var isForeign: Bool { !isMarked && !entries.isEmpty }

    /// The entries under Collie's names an earlier run left (the run's own `config.yaml` is simply rewritten,
    /// hidden leftovers of interrupted writes are cleaned up, so neither counts).
    public var earlierOutputs: [String] {
        entries.filter { Self.isOutputName($0) && $0 != TrainingCheckpoint.configFileName }
    }

    /// Checks what a run may do here, locks the folder, removes an earlier run's outputs when `start` allows it
    /// (calling `report` with each path first) and marks the folder. Keep the returned lock for the whole run.
    ///
    /// - Parameter inputs: the files and folders the run reads, with the config key that names each.
    /// - Throws: `TrainerError` naming `output_dir` and what is in the way; `CheckpointError` when another process
    ///   holds the lock or a removal fails.
    public func prepare(_ start: Start, inputs: [(key: String, path: String)],
                        report: (String) -> Void) throws -> FolderLock {
        let fm = FileManager.default
        let resolved = url.standardizedFileURL.resolvingSymlinksInPath()
        func refuse(_ message: String) -> TrainerError { TrainerError("output_dir: \(url.path): \(message)") }
        if resolved.path == "/" { throw refuse("the root folder cannot be an output folder") }
        let homes = [ProcessInfo.processInfo.environment["HOME"], fm.homeDirectoryForCurrentUser.path].compactMap { $0 }
        if homes.contains(where: { URL(fileURLWithPath: $0).standardizedFileURL.resolvingSymlinksInPath() == resolved }) {
            throw refuse("the home folder cannot be an output folder; name a folder inside it")
        }
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw refuse("is a file, not a folder")
        }
        for input in inputs {
            let path = URL(fileURLWithPath: input.path).standardizedFileURL.resolvingSymlinksInPath().pathComponents
            let folder = resolved.pathComponents
            guard path.count > folder.count, Array(path.prefix(folder.count)) == folder,
                  Self.isOutputName(path[folder.count]) else { continue }
            throw refuse("\(input.key) (\(input.path)) is inside \(path[folder.count])/, which a run in this folder "
                         + "replaces or removes; copy it out of the folder first, or choose another output_dir")
        }
        if case .fresh(let overwrite) = start, isForeign {
            let current = URL(fileURLWithPath: fm.currentDirectoryPath).standardizedFileURL.resolvingSymlinksInPath()
            let how = "choose a new or empty folder"
            if resolved.path == current.path {
                throw refuse("the current folder is not empty and was not written by collie train; \(how)")
            }
            guard overwrite else {
                throw refuse("is not empty and was not written by collie train (no \(Self.markerFileName)); \(how), or "
                             + "add --overwrite to write into it (nothing in it is removed)")
            }
            let clashing = entries.filter(Self.isOutputName)
            if !clashing.isEmpty {
                throw refuse("holds \(clashing.joined(separator: ", ")), which collie train did not write here (no "
                             + "\(Self.markerFileName)) and would replace; move them away or \(how)")
            }
        }
        try fm.createDirectory(at: url, withIntermediateDirectories: true)
        let lock = try FolderLock(folder: url)
        if start == .fresh(overwrite: false), isMarked, case let earlier = earlierOutputs, !earlier.isEmpty {
            let continuation = earlier.contains { $0.hasPrefix(TrainingCheckpoint.folderPrefix) }
                ? "continue it with --resume latest, " : ""
            throw refuse("holds an earlier run's outputs (\(earlier.joined(separator: ", "))); \(continuation)start "
                         + "over with --overwrite (removes them), or choose another output_dir")
        }
        if start == .fresh(overwrite: true), isMarked {
            for name in earlierOutputs {
                let entry = url.appendingPathComponent(name)
                report("removing \(entry.path) (--overwrite)")
                var isFolder: ObjCBool = false
                _ = fm.fileExists(atPath: entry.path, isDirectory: &isFolder)
                if isFolder.boolValue { try AtomicFolder.remove(entry) } else { try fm.removeItem(at: entry) }
            }
        }
        if !isMarked {
            try AtomicFile.write(Data("collie train writes here; see docs/ARCHITECTURE.md (output folder)\n".utf8),
                                 to: url.appendingPathComponent(Self.markerFileName))
        }
        AtomicFolder.removeLeftovers(in: url)
        return lock
    }

    /// The files and folders `config` makes a run read, with the key that names each.
    public static func inputs(of config: CollieConfig) -> [(key: String, path: String)] {
        var inputs: [(key: String, path: String)] = []
        if case .folder(let path) = config.model { inputs.append(("model", path)) }
        if let tokenizer = config.tokenizer { inputs.append(("tokenizer", tokenizer)) }
        if let trainData = config.trainData { inputs.append(("train_data", trainData)) }
        if let evalData = config.evalData { inputs.append(("eval_data", evalData)) }
        for (index, evaluator) in config.evaluators.enumerated() { inputs.append(("evaluators[\(index)].data", evaluator.data)) }
        return inputs
    }
}
