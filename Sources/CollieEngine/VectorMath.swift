import RealModule

/// Vectorized row primitives for the softmax-shaped kernels (attention, cross-entropy, softmax,
/// SwiGLU): max, Σ exp(x − shift), in-place exp. They work on `SIMD8` lanes so that, with the
/// package's Haswell target, each lane group is one AVX2 instruction; tails are padded with −∞.
///
/// `Float` uses a polynomial exp (Cephes' expf: range reduction by ln 2, degree-6 polynomial,
/// ≤ 2 ulp); `Double` uses the C library's exp lane by lane so gradient checks stay exact.
enum VectorMath {
    /// Loads up to 8 elements, padding missing lanes with `fill`.
    @inline(__always)
    static func load<F: FloatElement>(_ p: UnsafePointer<F>, _ count: Int, fill: F) -> SIMD8<F> {
        if count >= 8 { return UnsafeRawPointer(p).loadUnaligned(as: SIMD8<F>.self) }
        var v = SIMD8<F>(repeating: fill)
        for i in 0..<count { v[i] = p[i] }
        return v
    }

    @inline(__always)
    static func store<F: FloatElement>(_ v: SIMD8<F>, _ p: UnsafeMutablePointer<F>, _ count: Int) {
        if count >= 8 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<F>.self); return }
        for i in 0..<count { p[i] = v[i] }
    }

    /// The largest of `p[0..<n]` (−∞ when empty).
    @inline(__always)
    static func maximum<F: FloatElement>(_ p: UnsafePointer<F>, _ n: Int) -> F {
        var m = SIMD8<F>(repeating: -.infinity)
        var i = 0
        while i < n {
            m = pointwiseMax(m, load(p + i, n - i, fill: -.infinity))
            i += 8
        }
        return m.max()
    }

    /// Σ exp(p[i] − shift) over `n` elements.
    @inline(__always)
    static func sumExp<F: FloatElement>(_ p: UnsafePointer<F>, _ n: Int, shift: F) -> F {
        var s = SIMD8<F>(repeating: 0)
        let k = SIMD8<F>(repeating: shift)
        var i = 0
        while i < n {
            s += F.vectorExp(load(p + i, n - i, fill: -.infinity) - k)
            i += 8
        }
        return s.sum()
    }

    /// p[i] = exp(p[i] − shift) · scale in place; returns Σ exp(p[i] − shift).
    @inline(__always)
    @discardableResult
    static func exponentiate<F: FloatElement>(_ p: UnsafeMutablePointer<F>, _ n: Int, shift: F,
                                                     scale: F = 1) -> F {
        var s = SIMD8<F>(repeating: 0)
        let k = SIMD8<F>(repeating: shift), c = SIMD8<F>(repeating: scale)
        var i = 0
        while i < n {
            let e = F.vectorExp(load(p + i, n - i, fill: -.infinity) - k)
            s += e
            store(e * c, p + i, n - i)
            i += 8
        }
        return s.sum()
    }

    /// dst[i] += exp(src[i] − shift) · scale.
    @inline(__always)
    static func addExponentiated<F: FloatElement>(_ src: UnsafePointer<F>, to dst: UnsafeMutablePointer<F>, _ n: Int,
                                                  shift: F, scale: F) {
        let k = SIMD8<F>(repeating: shift), c = SIMD8<F>(repeating: scale)
        var i = 0
        while i < n {
            let e = F.vectorExp(load(src + i, n - i, fill: -.infinity) - k)
            store(load(dst + i, n - i, fill: 0) + e * c, dst + i, n - i)
            i += 8
        }
    }

    /// The logistic sigmoid 1 / (1 + exp(−x)) of 8 lanes.
    @inline(__always)
    static func sigmoid<F: FloatElement>(_ x: SIMD8<F>) -> SIMD8<F> {
        1 / (1 + F.vectorExp(-x))
    }
}

extension Float {
    /// exp of 8 lanes: Cephes' expf. Lanes below −87.34 give 0, above 88.38 give +∞, NaN stays NaN.
    @inline(__always)
    public static func vectorExp(_ v: SIMD8<Float>) -> SIMD8<Float> {
        let lo: Float = -87.336_54, hi: Float = 88.376_26
        var x = v.replacing(with: lo, where: v .< lo)
        x.replace(with: hi, where: x .> hi)
        // n = round(x / ln 2) by the 1.5·2²³ shifter; its low bits hold n.
        let shifter = SIMD8<Float>(repeating: 12_582_912)
        let t = x * 1.442_695_04 + shifter
        let n = t - shifter
        let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let y = p * r * r + r + 1
        let exponent = (unsafeBitCast(t, to: SIMD8<UInt32>.self) &<< 23) &+ SIMD8<UInt32>(repeating: 127 << 23)
        var result = y * unsafeBitCast(exponent, to: SIMD8<Float>.self)
        result.replace(with: 0, where: v .< lo)
        result.replace(with: .infinity, where: v .> hi)
        return result
    }
}

extension Double {
    /// exp of 8 lanes with the C library (exact; float64 is for gradient checks).
    @inline(__always)
    public static func vectorExp(_ v: SIMD8<Double>) -> SIMD8<Double> {
        var r = SIMD8<Double>()
        for i in 0..<8 { r[i] = Double.exp(v[i]) }
        return r
    }
}
