import CollieTraining
import Foundation

extension FuzzEntryPoints {
    /// A dataset file (a JSON array or JSON Lines), read as training records (format detected), generation
    /// records and classification records, as `collie train` and `collie evaluate` read it. Accepted when one of
    /// the three reads it; otherwise the training reader's error is thrown.
    static func datasetRecords(_ input: [UInt8]) throws {
        let url = try ScratchFile.write(input, as: "records.jsonl")
        let generation = (try? GenerationRecord.load(from: url)) != nil
        let classification = (try? ClassificationRecord.load(from: url)) != nil
        do {
            _ = try TrainingRecord.load(from: url)
        } catch _ where generation || classification {}
    }
}
