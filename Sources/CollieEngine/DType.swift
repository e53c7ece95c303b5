/// The element type of a tensor's storage.
///
/// Computation happens in `float32` (or `float64` for gradient checks); `bfloat16` and `float16` are
/// storage formats that convert to `float32` with round-to-nearest-even, as PyTorch does; integer
/// types hold token ids and indices.
public enum DType: String, Codable, CaseIterable, Sendable {
    case float32
    case float64
    case bfloat16
    case float16
    case int32
    case int64

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .bfloat16, .float16: 2
        }
    }

    /// True for the types kernels compute in.
    public var isCompute: Bool { self == .float32 || self == .float64 }

    /// True for floating-point types (compute or storage).
    public var isFloatingPoint: Bool { self != .int32 && self != .int64 }
}

/// Conversions between `Float` and the 16-bit storage formats, bit-exact with PyTorch.
public enum HalfPrecision {
    /// Rounds a `Float` to bfloat16 bits, round-to-nearest-even; NaN stays a quiet NaN.
    @inlinable
    public static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x0040) }
        let rounding: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// Widens bfloat16 bits to a `Float` (exact).
    @inlinable
    public static func float(bfloat16 bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Rounds a `Float` to IEEE half-precision bits, round-to-nearest-even.
    @inlinable
    public static func float16Bits(_ value: Float) -> UInt16 {
        Float16(value).bitPattern
    }

    /// Widens IEEE half-precision bits to a `Float` (exact).
    @inlinable
    public static func float(float16 bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }
}
