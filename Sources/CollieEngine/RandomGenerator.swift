/// A seeded pseudo-random generator (xoshiro256**), so runs with the same seed are identical.
public struct RandomGenerator: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64

    /// Seeds the four state words from `seed` with SplitMix64, as xoshiro's authors recommend.
    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    /// The four state words, so a checkpoint can save the generator and resume its exact sequence.
    public var state: [UInt64] { [s0, s1, s2, s3] }

    /// A generator that continues from `state` (a value read from `state`).
    public init(state: [UInt64]) {
        precondition(state.count == 4 && state.contains { $0 != 0 }, "a generator state is four words, not all zero")
        s0 = state[0]; s1 = state[1]; s2 = state[2]; s3 = state[3]
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// A uniform `Double` in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Self.unit(next()) }

    /// A standard normal sample (Box–Muller).
    public mutating func nextNormal() -> Double {
        let first = next()
        return Self.normal(first, next())
    }

    /// The uniform `Double` in [0, 1) that `nextUnit()` makes of the word `word`.
    @inlinable
    public static func unit(_ word: UInt64) -> Double { Double(word >> 11) * 0x1.0p-53 }

    /// The standard normal sample that `nextNormal()` makes of two consecutive words (Box–Muller's cosine branch),
    /// so values can be computed apart from drawing their words (`Tensor.normal` in parallel).
    public static func normal(_ first: UInt64, _ second: UInt64) -> Double {
        let u1 = 1 - unit(first)  // (0, 1]
        let u2 = unit(second)
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }
}

import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
