import CollieEngine
import XCTest

/// `Tensor.linear(_:weight:addingTo:)`, a LoRA adapter's B product added to its layer's output: the same values and
/// gradients as the product followed by a sum, summed over the residual's own memory where nothing else can read it.
final class LinearResidualTests: XCTestCase {
    private struct Operands {
        let x, w, z, v, upstream: Tensor

        init(seed: UInt64) {
            var generator = RandomGenerator(seed: seed)
            x = .normal([3, 40, 96], generator: &generator)
            w = .normal([8, 96], generator: &generator)
            z = .normal([3, 40, 32], generator: &generator)
            v = .normal([8, 32], generator: &generator)
            upstream = .normal([3, 40, 8], generator: &generator)
            for t in [x, w, z, v] { t.requiresGrad = true }
        }
    }

    /// Output and the four gradients (the product's operands and the residual's), bit for bit.
    func testAddingToAResidualEqualsTheProductPlusTheResidual() {
        var results: [[[Float]]] = []
        for fused in [false, true] {
            let o = Operands(seed: 3)
            let residual = Tensor.linear(o.z, weight: o.v)
            let y = fused ? Tensor.linear(o.x, weight: o.w, addingTo: residual) : residual + .linear(o.x, weight: o.w)
            XCTAssertEqual(y.shape, [3, 40, 8])
            (y * o.upstream).sum().backward()
            results.append([y.floats(), o.x.grad!.floats(), o.w.grad!.floats(), o.z.grad!.floats(), o.v.grad!.floats()])
        }
        for (i, name) in ["output", "dX", "dW", "the residual's dZ", "the residual's dV"].enumerated() {
            XCTAssertEqual(results[1][i], results[0][i], name)
        }
    }

    /// A layer's fresh output is summed into in place: the result is its memory.
    func testAFreshOutputIsSummedIntoInPlace() {
        let o = Operands(seed: 4)
        let residual = Tensor.linear(o.z, weight: o.v)
        let memory = ObjectIdentifier(residual.storage)
        let y = Tensor.linear(o.x, weight: o.w, addingTo: residual)
        XCTAssertEqual(ObjectIdentifier(y.storage), memory)
    }

    /// A residual whose memory something else holds — a parameter, or a tensor sharing its storage — keeps its values:
    /// the sum goes to a copy.
    func testAResidualOthersCanReadKeepsItsValues() {
        let o = Operands(seed: 5)
        let product = withNoGrad { Tensor.linear(o.x, weight: o.w) }.floats()
        var generator = RandomGenerator(seed: 6)
        let parameter = Tensor.normal([3, 40, 8], generator: &generator)
        parameter.requiresGrad = true
        let output = Tensor.linear(o.z, weight: o.v)
        let sharing = output.reshaped([120, 8])   // a view of the output's memory
        withExtendedLifetime(sharing) {
            for residual in [parameter, output] {
                let values = residual.floats()
                let y = Tensor.linear(o.x, weight: o.w, addingTo: residual)
                XCTAssertNotEqual(ObjectIdentifier(y.storage), ObjectIdentifier(residual.storage))
                XCTAssertTrue(residual.floats() == values, "the residual is unchanged")
                XCTAssertTrue(y.floats() == zip(values, product).map { $0 + $1 }, "the sum")
                y.sum().backward()
            }
        }
        XCTAssertEqual(parameter.grad?.floats(), [Float](repeating: 1, count: 3 * 40 * 8), "the residual's gradient")
    }
}
