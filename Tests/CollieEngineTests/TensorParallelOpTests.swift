import CollieEngine
import XCTest

/// The tensor-parallel ops in a group of one are the whole ops: the vocabulary-parallel cross-entropy equals the
/// fused one (loss and gradient), the vocabulary-parallel embedding the lookup, f and g the identity.
/// (The split ops on 2 ranks: CollieMPITests' TensorParallelLayerTests.)
final class TensorParallelOpTests: XCTestCase {
    func testVocabularyParallelCrossEntropyOfOneRankIsTheFusedOne() {
        var generator = RandomGenerator(seed: 4)
        let (n, v) = (6, 11)
        let values = (0..<(n * v)).map { _ in Float(generator.nextUnit() * 4 - 2) }
        let targets = Tensor(ints: [3, 0, Tensor.ignoreIndex, 10, 7, 7], shape: [n])
        for reduction in [LossReduction.sum, .mean] {
            let a = Tensor(values, shape: [n, v]); a.requiresGrad = true
            let b = Tensor(values, shape: [n, v]); b.requiresGrad = true
            let want = Tensor.crossEntropy(logits: a, targets: targets, reduction: reduction)
            let got = Tensor.vocabularyParallelCrossEntropy(logits: b, targets: targets, start: 0,
                                                            communicator: SingleProcessCommunicator(), reduction: reduction)
            XCTAssertEqual(got.item, want.item, accuracy: 1e-5 * abs(want.item))
            want.backward(); got.backward()
            for (x, y) in zip(b.grad!.floats(), a.grad!.floats()) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        }
    }

    func testVocabularyParallelEmbeddingOfOneRankIsTheLookup() {
        var generator = RandomGenerator(seed: 5)
        let table = Tensor((0..<(8 * 3)).map { _ in Float(generator.nextUnit()) }, shape: [8, 3])
        table.requiresGrad = true
        let ids = Tensor(ints: [1, 7, 1, 0], shape: [2, 2])
        let got = Tensor.vocabularyParallelEmbedding(ids, weight: table, start: 0, communicator: SingleProcessCommunicator())
        XCTAssertEqual(got.floats(), Tensor.embedding(ids, weight: table).floats())
        got.sum().backward()
        XCTAssertEqual(table.grad!.floats()[3..<6], [2, 2, 2])
    }
}
