import CollieEngine
import CollieModels
import CollieTokenizers
import CollieTraining
import Foundation
import XCTest

final class BatchingTests: XCTestCase {
    private func example(_ tokens: [Int], labels: [Int]? = nil) -> TrainingExample {
        TrainingExample(tokens: tokens, labels: labels ?? tokens)
    }

    /// A dataset of `count` text-like examples of varying length (example i has i % 3 + 2 tokens).
    private func dataset(count: Int) throws -> TrainingDataset {
        let records = (0..<count).map { i in
            TrainingRecord(.tokens([1] + (0...(i % 3)).map { 100 + i * 10 + $0 }, labels: nil))
        }
        return try TrainingDataset(records: records, tokenizer: Fixtures.tokenizer)
    }

    // MARK: - Padder

    func testRightPaddingMasksPadsAndNeverTrainsThem() {
        let padder = Padder(side: .right, padTokenID: 0)
        let batch = padder.pad([example([1, 5, 6, 7]), example([1, 8], labels: [-100, 8])])
        XCTAssertEqual(batch.batchSize, 2)
        XCTAssertEqual(batch.length, 4)
        XCTAssertEqual(batch.tokens, [1, 5, 6, 7, 1, 8, 0, 0])
        XCTAssertEqual(batch.labels, [-100, 5, 6, 7, -100, 8, -100, -100])
        XCTAssertEqual(batch.attentionMask, [1, 1, 1, 1, 1, 1, 0, 0])
        XCTAssertEqual(batch.positions, [0, 1, 2, 3, 0, 1, 0, 0])
        XCTAssertEqual(batch.tokenCount, 6)
        XCTAssertEqual(batch.trainedTokenCount, 4)
        XCTAssertEqual(batch.tokenTensor.shape, [2, 4])
        XCTAssertEqual(batch.attentionMaskTensor.ints(), batch.attentionMask)
    }

    func testLeftPaddingPutsPadsFirstAndStartsPositionsAtTheFirstToken() {
        let padder = Padder(side: .left, padTokenID: 2)
        let batch = padder.pad([example([1, 5, 6]), example([1, 8])])
        XCTAssertEqual(batch.tokens, [1, 5, 6, 2, 1, 8])
        XCTAssertEqual(batch.labels, [-100, 5, 6, -100, -100, 8], "a pad never predicts a row's first token")
        XCTAssertEqual(batch.attentionMask, [1, 1, 1, 0, 1, 1])
        XCTAssertEqual(batch.positions, [0, 1, 2, 0, 0, 1])
    }

    func testPaddingNeverCountsInTheLossTokens() throws {
        let dataset = try dataset(count: 7)
        for side in PaddingSide.allCases {
            let batch = Padder(side: side, padTokenID: 0).pad(Array(dataset))
            XCTAssertEqual(batch.trainedTokenCount, dataset.map(\.trainedTokenCount).reduce(0, +))
            for i in batch.attentionMask.indices where batch.attentionMask[i] == 0 {
                XCTAssertEqual(batch.labels[i], -100)
            }
        }
    }

    /// `flattened()` puts the rows' tokens one after another in one row without padding (a padding-free batch): each
    /// example keeps its positions from 0 and its first label −100, so its next-token targets are the padded rows'
    /// without the padding and none crosses into the next example; `sequences` holds the lengths; a row without tokens
    /// leaves nothing.
    func testFlattenedBatchPacksTheRowsWithoutPadding() {
        for side in PaddingSide.allCases {
            let padded = Padder(side: side, padTokenID: 0).pad(
                [example([1, 5, 6, 7]), example([]), example([1, 8], labels: [-100, 8])], indices: [4, 2, 9])
            let flat = padded.flattened()
            XCTAssertEqual(flat.batchSize, 1, "\(side)")
            XCTAssertEqual(flat.length, 6, "\(side)")
            XCTAssertEqual(flat.tokens, [1, 5, 6, 7, 1, 8], "\(side)")
            XCTAssertEqual(flat.labels, [-100, 5, 6, 7, -100, 8], "\(side)")
            XCTAssertEqual(flat.positions, [0, 1, 2, 3, 0, 1], "\(side)")
            XCTAssertEqual(flat.attentionMask, [1, 1, 1, 1, 1, 1], "\(side)")
            XCTAssertFalse(flat.hasPadding, "\(side)")
            XCTAssertEqual(flat.sequences, PackedSequences(lengths: [4, 2]), "\(side)")
            XCTAssertEqual(flat.exampleIndices, [4, 2, 9], "\(side)")
            XCTAssertEqual(flat.tokenCount, padded.tokenCount, "\(side)")
            XCTAssertEqual(flat.trainedTokenCount, padded.trainedTokenCount, "\(side)")
            XCTAssertEqual(NextTokenLoss.shiftedTargets(flat.labels, batchSize: 1), [5, 6, 7, -100, 8, -100], "\(side)")
            XCTAssertEqual(flat.flattened(), flat, "flattening twice changes nothing")
        }
        let empty = Padder(padTokenID: 0).pad([example([]), example([])])
        XCTAssertEqual(empty.flattened(), empty, "a batch without tokens stays as it is")
        // A batch made by hand, whose rows' first labels are not −100 (no position of a row predicts them).
        var handMade = Padder(padTokenID: 0).pad([example([1, 5, 6]), example([1, 8])])
        handMade.labels = handMade.tokens
        XCTAssertEqual(handMade.flattened().labels, [-100, 5, 6, -100, 8], "no target crosses into the next example")
    }

    func testPadderRoundsLengthUpToAMultiple() {
        let batch = Padder(padTokenID: 0, lengthMultiple: 8).pad([example([1, 2, 3])])
        XCTAssertEqual(batch.length, 8)
        XCTAssertEqual(batch.attentionMask, [1, 1, 1, 0, 0, 0, 0, 0])
    }

    func testPadderUsesTheTokenizersPadElseEOS() {
        XCTAssertEqual(Padder(tokenizer: Fixtures.tokenizer).padTokenID, 2, "LLaMA-2 has no pad token")
    }

    // MARK: - Sampler

    func testNormalModeKeepsTheShortLastBatch() {
        let sampler = BatchSampler(count: 10, batchSize: 4)
        XCTAssertEqual(sampler.batchesPerEpoch, 3)
        XCTAssertEqual(sampler.batches(epoch: 0), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    }

    func testDropModeLeavesTheShortLastBatchOut() {
        let sampler = BatchSampler(count: 10, batchSize: 4, lastBatch: .drop)
        XCTAssertEqual(sampler.batchesPerEpoch, 2)
        XCTAssertEqual(sampler.batches(epoch: 0), [[0, 1, 2, 3], [4, 5, 6, 7]])
    }

    func testFillModeCompletesTheLastBatchFromTheStart() {
        XCTAssertEqual(BatchSampler(count: 10, batchSize: 4, lastBatch: .fill).batches(epoch: 0),
                       [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]])
        XCTAssertEqual(BatchSampler(count: 3, batchSize: 8, lastBatch: .fill).batches(epoch: 0),
                       [[0, 1, 2, 0, 1, 2, 0, 1]], "wraps as often as needed")
        let shuffled = BatchSampler(count: 10, batchSize: 4, lastBatch: .fill, shuffle: true, seed: 3)
        let order = shuffled.order(epoch: 2)
        XCTAssertEqual(shuffled.batches(epoch: 2).last, [order[8], order[9], order[0], order[1]])
    }

    func testShuffleIsAPermutationDeterministicPerSeedAndEpoch() {
        let sampler = BatchSampler(count: 100, batchSize: 8, shuffle: true, seed: 1234)
        let epoch0 = sampler.order(epoch: 0), epoch1 = sampler.order(epoch: 1)
        XCTAssertEqual(epoch0.sorted(), Array(0..<100))
        XCTAssertNotEqual(epoch0, Array(0..<100))
        XCTAssertNotEqual(epoch0, epoch1, "each epoch has its own order")
        XCTAssertEqual(BatchSampler(count: 100, batchSize: 8, shuffle: true, seed: 1234).order(epoch: 1), epoch1,
                       "the same seed and epoch give the same order in another run")
        XCTAssertNotEqual(BatchSampler(count: 100, batchSize: 8, shuffle: true, seed: 1235).order(epoch: 1), epoch1)
        XCTAssertEqual(BatchSampler(count: 100, batchSize: 8, shuffle: true, seed: 1234 ^ 1).order(epoch: 0), epoch1,
                       "epoch e is shuffled with seed ⊕ e")
    }

    func testShuffleOrderIsPinned() {
        // Guards against an accidental change of the generator or the shuffle, which would silently change
        // which batches a resumed run of an older checkpoint sees.
        XCTAssertEqual(BatchSampler(count: 10, batchSize: 1, shuffle: true, seed: 42).order(epoch: 0),
                       BatchSampler(count: 10, batchSize: 1, shuffle: true, seed: 42).order(epoch: 0))
        XCTAssertEqual(BatchSampler(count: 10, batchSize: 1, shuffle: true, seed: 42).order(epoch: 0), Self.pinnedOrder)
    }

    static let pinnedOrder = [7, 3, 8, 9, 5, 6, 4, 1, 0, 2]

    // MARK: - Loader and position

    func testLoaderVisitsEveryExampleOncePerEpoch() throws {
        let loader = try DataLoader(dataset: try dataset(count: 10), batchSize: 3, shuffle: true, seed: 9,
                                    padder: Padder(padTokenID: 0))
        let batches = Array(loader.batches(epochs: 2))
        XCTAssertEqual(batches.count, 8)
        XCTAssertEqual(batches.map(\.position.epoch), [0, 0, 0, 0, 1, 1, 1, 1])
        XCTAssertEqual(batches.prefix(4).flatMap(\.batch.exampleIndices).sorted(), Array(0..<10))
        XCTAssertEqual(batches[5].batch, loader.batch(at: DataPosition(epoch: 1, batchIndex: 1)))
    }

    func testRestoringThePositionMidEpochYieldsTheSameRemainingBatches() throws {
        let loader = try DataLoader(dataset: try dataset(count: 11), batchSize: 2, lastBatch: .fill, shuffle: true,
                                    seed: 42, padder: Padder(padTokenID: 0))
        let uninterrupted = Array(loader.batches(epochs: 3))

        // Run 4 batches into epoch 1, save the position as a checkpoint would, and resume from the saved bytes.
        var first = loader.batches(epochs: 3)
        for _ in 0..<(loader.batchesPerEpoch + 4) { _ = first.next() }
        XCTAssertEqual(first.position, DataPosition(epoch: 1, batchIndex: 4))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let saved = try encoder.encode(first.position)
        XCTAssertEqual(String(decoding: saved, as: UTF8.self), #"{"batch_index":4,"epoch":1}"#)
        let restored = try JSONDecoder().decode(DataPosition.self, from: saved)

        let resumed = Array(loader.batches(from: restored, epochs: 3))
        let remaining = Array(uninterrupted.dropFirst(loader.batchesPerEpoch + 4))
        XCTAssertEqual(resumed.map(\.position), remaining.map(\.position))
        XCTAssertEqual(resumed.map(\.batch), remaining.map(\.batch))
    }

    func testPositionAtTheEndOfAnEpochMovesToTheNextEpoch() throws {
        let loader = try DataLoader(dataset: try dataset(count: 4), batchSize: 2, padder: Padder(padTokenID: 0))
        var batches = loader.batches(from: DataPosition(epoch: 0, batchIndex: 2), epochs: 2)
        XCTAssertEqual(batches.position, DataPosition(epoch: 1, batchIndex: 0))
        XCTAssertEqual(batches.next()?.position, DataPosition(epoch: 1, batchIndex: 0))
        _ = batches.next()
        XCTAssertNil(batches.next())
        XCTAssertEqual(batches.position, DataPosition(epoch: 2, batchIndex: 0))
    }

    func testDropModeWithFewerExamplesThanABatchIsAnError() throws {
        XCTAssertThrowsError(try DataLoader(dataset: try dataset(count: 3), batchSize: 4, lastBatch: .drop,
                                            padder: Padder(padTokenID: 0)))
    }

    func testLoaderFromConfigUsesItsBatchSizeShuffleAndSeed() throws {
        var config = CollieConfig(model: .preset(.tiny))
        config.trainMicroBatchSize = 4
        config.seed = 5
        config.evalBatchSize = 3
        let dataset = try dataset(count: 10)
        let training = try DataLoader(training: dataset, config: config, tokenizer: Fixtures.tokenizer)
        XCTAssertEqual(training.sampler, BatchSampler(count: 10, batchSize: 4, lastBatch: .normal, shuffle: true, seed: 5))
        XCTAssertEqual(training.padder, Padder(side: .right, padTokenID: 2))
        let evaluation = try DataLoader(evaluation: dataset, config: config, tokenizer: Fixtures.tokenizer)
        XCTAssertEqual(evaluation.sampler, BatchSampler(count: 10, batchSize: 3))
    }
}
