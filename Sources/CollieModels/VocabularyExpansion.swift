import CollieEngine
import CollieIO
import Foundation

/// A model's vocabulary grown at the end (after `collie vocab merge`): the token embedding and the output projection
/// gain rows for the new ids, each new row the mean of the old rows (as CoLLiE's expand_vocab example initializes
/// them; an output bias, MOSS's, the mean of the old biases); the old rows and every other parameter are unchanged, so the old ids' logits stay what they were.
public enum VocabularyExpansion {
    /// The model of the Hugging Face folder `folder` with `vocabularySize` token ids, its first
    /// `expectedVocabularySize` rows those of the folder's weights.
    /// - Throws: `CheckpointError` naming the file when the folder's embedding does not have
    ///   `expectedVocabularySize` rows (the model was not trained on the base tokenizer), when `vocabularySize` is
    ///   smaller, or when the folder does not load.
    public static func expandedModel(folder: URL, expectedVocabularySize: Int, vocabularySize: Int) throws
        -> any CausalLanguageModel {
        let configuration = try LlamaConfiguration.load(from: folder)
        let source = try CheckpointFolder(url: folder)
        let embeddingKey = configuration.embeddingKey
        let configPath = folder.appendingPathComponent("config.json").path
        guard let rows = source.shape(of: embeddingKey)?.first else {
            throw CheckpointError(file: folder.path, "the weights have no token embedding '\(embeddingKey)'")
        }
        guard rows == expectedVocabularySize else {
            throw CheckpointError(file: source.path(of: embeddingKey),
                                  "the token embedding '\(embeddingKey)' has \(rows) rows, but the base tokenizer has "
                                  + "\(expectedVocabularySize) pieces: the model was not trained with that tokenizer")
        }
        guard configuration.vocabularySize == rows else {
            throw CheckpointError(file: configPath, "vocab_size is \(configuration.vocabularySize), but the token embedding "
                                  + "'\(embeddingKey)' has \(rows) rows")
        }
        guard vocabularySize >= rows else {
            throw CheckpointError(file: configPath, "cannot shrink the vocabulary from \(rows) to \(vocabularySize) ids")
        }
        let architecture = PretrainedModel.architecture(of: configuration)
        let model = try architecture.load(from: source, configuration: configuration)
        return try expanded(model, to: vocabularySize)
    }

    /// `model` with `vocabularySize` token ids (at least its own): a new model of the same architecture whose
    /// embedding and output projection have the old rows followed by their mean; every other parameter is copied.
    public static func expanded(_ model: any CausalLanguageModel, to vocabularySize: Int) throws -> any CausalLanguageModel {
        var configuration = model.configuration
        let oldSize = configuration.vocabularySize
        precondition(vocabularySize >= oldSize, "the vocabulary only grows")
        configuration.vocabularySize = vocabularySize
        try configuration.validate()
        let architecture = type(of: model)
        try ParameterMemory.check(architecture.parameterShapes(for: configuration).map(\.shape), dtype: .float32,
                                  for: "the model with \(vocabularySize) token ids")
        var initialization = Initialization.uninitialized
        let grown = architecture.init(configuration, initialization: &initialization)
        let old = Dictionary(model.namedParameters.map { ($0.key, $0.tensor) }, uniquingKeysWith: { first, _ in first })
        // The parameters with a row per token id — the embedding, the output projection and its bias where the
        // family has one (MOSS) — are the ones whose shape changed.
        for (key, parameter) in grown.namedParameters {
            guard let source = old[key] else { preconditionFailure("no parameter \(key) in the model being expanded") }
            if parameter.shape != source.shape {
                precondition(parameter.shape.first == vocabularySize && source.shape.first == oldSize
                             && parameter.shape.dropFirst() == source.shape.dropFirst(), "\(key): not a row per token id")
                fillRows(parameter, from: source)
            } else {
                parameter.assignValues(from: source)
            }
        }
        return grown
    }

    /// Writes `source`'s rows [V, C] into the first V rows of `target` [V', C] and their mean into the others. The mean
    /// is summed in float64 per column, then rounded once to the target's dtype.
    static func fillRows(_ target: Tensor, from source: Tensor) {
        let rows = source.shape[0], columns = source.count / max(source.shape[0], 1)
        let values = source.floats()  // [V * C]
        var sums = [Double](repeating: 0, count: columns)
        for r in 0..<rows {
            let row = r * columns
            for c in 0..<columns { sums[c] += Double(values[row + c]) }
        }
        let mean = sums.map { Float($0 / Double(rows)) }
        var grown = values
        grown.reserveCapacity(target.count)
        for _ in rows..<target.shape[0] { grown.append(contentsOf: mean) }
        target.assignValues(from: Tensor(grown, shape: target.shape))
    }
}
