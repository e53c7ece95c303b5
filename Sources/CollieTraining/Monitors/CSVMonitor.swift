import CollieIO
import Foundation

/// Writes training steps to a CSV file, one row per step, each row written (and so visible to
/// readers) as soon as the step is recorded.
///
/// `<name>.csv` holds the step log with the header
/// `step,epoch,loss,learning_rate,gradient_norm,tokens,tokens_per_second,step_seconds,peak_memory_bytes,wall_time`
/// (an unknown gradient norm is an empty field). Evaluation metrics vary from run to run, so they
/// go to `<name>.evaluation.csv` in long form (`step,metric,value,wall_time`), created at the
/// first evaluation. Numbers use Swift's shortest round-tripping form.
public final class CSVMonitor: TrainingMonitor {
    /// The step log's header row.
    public static let stepColumns = ["step", "epoch", "loss", "learning_rate", "gradient_norm", "tokens",
                                     "tokens_per_second", "step_seconds", "peak_memory_bytes", "wall_time"]
    /// The evaluation log's header row.
    public static let evaluationColumns = ["step", "metric", "value", "wall_time"]

    /// The step log.
    public let url: URL
    /// The evaluation log (exists once an evaluation was recorded).
    public let evaluationURL: URL
    private var steps: FileHandle?
    private var evaluations: FileHandle?
    private let now: () -> Date
    private var closed = false

    /// Creates (or replaces) the step log at `url`, creating its folder; `now` stamps the rows.
    public init(url: URL, now: @escaping () -> Date = Date.init) throws {
        self.url = url
        evaluationURL = url.deletingPathExtension().appendingPathExtension("evaluation.csv")
        self.now = now
        steps = try Self.create(url, header: Self.stepColumns)
    }

    /// A step log named `<runName>.csv` in `directory`.
    public convenience init(directory: URL, runName: String, now: @escaping () -> Date = Date.init) throws {
        try self.init(url: directory.appendingPathComponent(runName + ".csv"), now: now)
    }

    /// Continues the logs at `url` for a run resumed after update `step`: rows of later steps (written by the
    /// interrupted run after its checkpoint, and about to be redone) are dropped, new rows are appended. Files
    /// that do not exist are created.
    public init(url: URL, resumingAfter step: Int, now: @escaping () -> Date = Date.init) throws {
        self.url = url
        evaluationURL = url.deletingPathExtension().appendingPathExtension("evaluation.csv")
        self.now = now
        steps = try Self.reopen(url, header: Self.stepColumns, keepingStepsThrough: step)
        if FileManager.default.fileExists(atPath: evaluationURL.path) {
            evaluations = try Self.reopen(evaluationURL, header: Self.evaluationColumns, keepingStepsThrough: step)
        }
    }

    public func record(_ event: TrainingEvent) throws {
        guard !closed else { return }
        let wallTime = Self.number(now().timeIntervalSince1970)
        switch event {
        case .step(let s):
            let fields = [String(s.step), String(s.epoch), Self.number(s.loss), Self.number(s.learningRate),
                          s.gradientNorm.map(Self.number) ?? "", String(s.tokens), Self.number(s.tokensPerSecond),
                          Self.number(s.stepSeconds), String(s.peakMemoryBytes), wallTime]
            try steps?.write(contentsOf: Data(Self.row(fields).utf8))
        case .evaluation(let step, let metrics):
            if evaluations == nil { evaluations = try Self.create(evaluationURL, header: Self.evaluationColumns) }
            var text = ""
            for (name, value) in metrics.sorted(by: { $0.key < $1.key }) {
                text += Self.row([String(step), name, Self.number(value), wallTime])
            }
            try evaluations?.write(contentsOf: Data(text.utf8))
        case .started, .checkpoint, .finished:
            break
        }
    }

    public func close() throws {
        guard !closed else { return }
        closed = true
        try steps?.close()
        try evaluations?.close()
        steps = nil
        evaluations = nil
    }

    deinit { try? close() }

    private static func create(_ url: URL, header: [String]) throws -> FileHandle {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: url.path, contents: Data(row(header).utf8)) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        return handle
    }

    /// Rewrites `url` keeping the header and the rows whose first field (the step) is at most `step`, and opens it
    /// for appending; creates it when missing.
    private static func reopen(_ url: URL, header: [String], keepingStepsThrough step: Int) throws -> FileHandle {
        guard let data = FileManager.default.contents(atPath: url.path), let text = String(data: data, encoding: .utf8) else {
            return try create(url, header: header)
        }
        var kept = row(header)
        for line in text.split(separator: "\n").dropFirst() {
            // A row cut short by a crash has fewer fields; it is dropped too.
            guard line.split(separator: ",", omittingEmptySubsequences: false).count >= header.count,
                  let rowStep = Int(line.prefix { $0 != "," }), rowStep <= step else { continue }
            kept += line + "\n"
        }
        try AtomicFile.write(Data(kept.utf8), to: url)
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        return handle
    }

    /// One CSV line: fields quoted (RFC 4180) when they hold a comma, quote or line break.
    static func row(_ fields: [String]) -> String {
        fields.map { field in
            guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return field }
            return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }.joined(separator: ",") + "\n"
    }

    /// A double in its shortest round-tripping form ("0.0003", "nan", "inf").
    static func number(_ value: Double) -> String { value.description }
}
