import CollieIO
import Foundation

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
/// The folder is written with `AtomicFolder`, so at every instant each `checkpoint-<step>` folder is complete.
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

    /// Sleeps for a minute when the environment variable `COLLIE_TEST_PAUSE_WRITING` names `destination`'s folder
    /// (`checkpoint-8`), so that a test can kill the process in the middle of writing it. Does nothing otherwise.
    public static func pauseIfRequested(writing destination: URL) {
        guard ProcessInfo.processInfo.environment["COLLIE_TEST_PAUSE_WRITING"] == destination.lastPathComponent else { return }
        Thread.sleep(forTimeInterval: 60)
    }
}
