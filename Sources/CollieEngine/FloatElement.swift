import CBLAS
import RealModule

/// The element types kernels compute in: `Float` for everything, `Double` for gradient checks.
///
/// Kernels are generic over this protocol and specialized by the compiler, so one implementation
/// serves both precisions; matrix products go to the matching BLAS routine.
public protocol FloatElement: BinaryFloatingPoint, Real, Sendable
where Self.RawSignificand: FixedWidthInteger {
    /// The dtype tag of this element type.
    static var dtype: DType { get }

    /// General matrix multiply on row-major data: C = alpha·op(A)·op(B) + beta·C.
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
        beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
}

extension Float: FloatElement {
    public static var dtype: DType { .float32 }

    /// The float32 product on the GEMM `Float32GEMM.current` picks for this CPU (OpenBLAS's sgemm or Collie's own
    /// `packedGEMM`) — or, inside `MixedPrecision.with(.bfloat16)`, `packedGEMM(precision: .bfloat16)` (bfloat16
    /// operands, float32 accumulation), which OpenBLAS does not offer.
    @inlinable
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        OpProfile.timingGEMM {
            let precision = MixedPrecision.current
            if precision == .bfloat16 || Float32GEMM.current == .collie {
                return packedGEMM(precision: precision, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                  a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            }
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
}

extension Double: FloatElement {
    public static var dtype: DType { .float64 }

    @inlinable
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        OpProfile.timingGEMM {
            cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }
}
