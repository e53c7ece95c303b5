import ArgumentParser
import Collie
import Foundation

/// `collie demo`: trains a tiny LLaMA-style model on bytes of a text file and prints the loss.
///
/// This is the smallest end-to-end run of the engine: embedding, RMSNorm, RoPE, grouped-query
/// flash attention, SwiGLU, fused cross-entropy, backward and AdamW, with parameters in one flat
/// buffer.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a tiny byte-level LLaMA on a text file and print the falling loss.")

    @Option(help: "A UTF-8 text file to learn from.")
    var text = "data/tinyshakespeare.txt"
    @Option(help: "Optimizer steps.")
    var steps = 40
    @Option(help: "Sequences per step.")
    var batchSize = 8
    @Option(help: "Tokens per sequence.")
    var sequenceLength = 128
    @Option(help: "AdamW learning rate.")
    var learningRate = 3e-3
    @Option(help: "Random seed for initialization and batches.")
    var seed: UInt64 = 1

    func run() throws {
        let url = URL(fileURLWithPath: text)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ValidationError("cannot read the text file '\(text)'")
        }
        let bytes = [UInt8](data)
        guard bytes.count > sequenceLength + 1 else {
            throw ValidationError("'\(text)' has \(bytes.count) bytes; need more than \(sequenceLength + 1)")
        }
        let configuration = LlamaConfiguration(
            hiddenSize: 128, intermediateSize: 352, hiddenLayers: 4, attentionHeads: 4, keyValueHeads: 2,
            vocabularySize: 256, maxPositionEmbeddings: sequenceLength)
        let model = LlamaForCausalLM(configuration, seed: seed)
        let buffer = ParameterBuffer(model.parameters)
        buffer.attachGradients()
        let optimizer = AdamW(parameters: model.parameters, learningRate: learningRate, weightDecay: 0)
        var generator = RandomGenerator(seed: seed &+ 1)
        print("collie demo: \(model.parameterCount.formatted()) parameters, \(bytes.count.formatted()) bytes of '\(text)', "
              + "batch \(batchSize) × \(sequenceLength) tokens, \(Parallel.threadCount) threads")

        var first: Float = 0, last: Float = 0
        for step in 1...steps {
            let start = DispatchTime.now().uptimeNanoseconds
            var ids: [Int] = []
            for _ in 0..<batchSize {
                let offset = Int(generator.next() % UInt64(bytes.count - sequenceLength))
                ids += bytes[offset..<(offset + sequenceLength)].map(Int.init)
            }
            let batch = Tensor(ints: ids, shape: [batchSize, sequenceLength])
            let loss = Parallel.withTrainingWorkers {
                buffer.zeroGradients()
                let loss = model.loss(ids: batch, labels: batch)
                loss.backward()
                optimizer.step()
                return loss
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let value = loss.item
            if step == 1 { first = value }
            last = value
            let tokensPerSecond = Double(batchSize * sequenceLength) / seconds
            print(String(format: "step %3d/%d | loss %.4f | %6.1f ms | %8.0f tok/s", step, steps, value,
                         seconds * 1000, tokensPerSecond))
        }
        print(String(format: "loss %.4f → %.4f", first, last))
    }
}
