/// Elementwise math: one table of unary functions with their derivatives, and binary arithmetic
/// with broadcasting whose gradient is summed back to each operand's shape in one place.

/// A unary elementwise function and its derivative.
public enum UnaryFunction: Sendable, Equatable {
    case negate, exp, log, sqrt, rsqrt, tanh, sigmoid, silu, geluTanh, geluErf, abs
    case power(Double)
    case clamp(min: Double?, max: Double?)

    @inline(__always)
    func apply<F: FloatElement>(_ x: F) -> F {
        switch self {
        case .negate: return -x
        case .exp: return F.exp(x)
        case .log: return F.log(x)
        case .sqrt: return x.squareRoot()
        case .rsqrt: return 1 / x.squareRoot()
        case .tanh: return F.tanh(x)
        case .sigmoid: return 1 / (1 + F.exp(-x))
        case .silu: return x / (1 + F.exp(-x))
        case .geluTanh:
            let inner = F(0.7978845608028654) * (x + F(0.044715) * x * x * x)
            return F(0.5) * x * (1 + F.tanh(inner))
        case .geluErf: return F(0.5) * x * (1 + F.erf(x * F(0.7071067811865476)))
        case .abs: return Swift.abs(x)
        case .power(let p):
            // Whole exponents by repeated multiplication, so negative bases work (x³ of −2 is −8).
            if let n = Int(exactly: p) { return F.pow(x, n) }
            return F.pow(x, F(p))
        case .clamp(let lo, let hi):
            var y = x
            if let lo, y < F(lo) { y = F(lo) }
            if let hi, y > F(hi) { y = F(hi) }
            return y
        }
    }

    /// dy/dx given the input `x` and the output `y`.
    @inline(__always)
    func derivative<F: FloatElement>(x: F, y: F) -> F {
        switch self {
        case .negate: return -1
        case .exp: return y
        case .log: return 1 / x
        case .sqrt: return F(0.5) / y
        case .rsqrt: return F(-0.5) * y * y * y
        case .tanh: return 1 - y * y
        case .sigmoid: return y * (1 - y)
        case .silu:
            let s = 1 / (1 + F.exp(-x))
            return s * (1 + x * (1 - s))
        case .geluTanh:
            let c = F(0.7978845608028654)
            let inner = c * (x + F(0.044715) * x * x * x)
            let t = F.tanh(inner)
            return F(0.5) * (1 + t) + F(0.5) * x * (1 - t * t) * c * (1 + 3 * F(0.044715) * x * x)
        case .geluErf:
            let cdf = F(0.5) * (1 + F.erf(x * F(0.7071067811865476)))
            let pdf = F.exp(F(-0.5) * x * x) * F(0.3989422804014327)
            return cdf + x * pdf
        case .abs: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .power(let p):
            if let n = Int(exactly: p) { return F(p) * F.pow(x, n - 1) }
            return F(p) * F.pow(x, F(p - 1))
        case .clamp(let lo, let hi):
            if let lo, x < F(lo) { return 0 }
            if let hi, x > F(hi) { return 0 }
            return 1
        }
    }

    var name: String {
        switch self {
        case .negate: "neg"; case .exp: "exp"; case .log: "log"; case .sqrt: "sqrt"; case .rsqrt: "rsqrt"
        case .tanh: "tanh"; case .sigmoid: "sigmoid"; case .silu: "silu"; case .geluTanh: "gelu_tanh"
        case .geluErf: "gelu"; case .abs: "abs"; case .power: "pow"; case .clamp: "clamp"
        }
    }
}

extension Tensor {
    /// Applies `function` to every element (differentiable).
    public func map(_ function: UnaryFunction) -> Tensor {
        let x = computeContiguous
        let out = Tensor(uninitializedShape: shape, dtype: x.dtype)
        func run<F: FloatElement>(_: F.Type) {
            let src = x.pointer(as: F.self), dst = out.pointer(as: F.self)
            Parallel.forEach(x.count, minimumChunk: 1 << 14) { r in for i in r { dst[i] = function.apply(src[i]) } }
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        return out.recording(function.name, [x]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self), xs = x.pointer(as: F.self), ys = out.pointer(as: F.self)
                sink.accumulate(0, as: F.self) { dx, beta in
                    Parallel.forEach(x.count, minimumChunk: 1 << 14) { r in
                        for i in r { dx[i] = beta * dx[i] + g[i] * function.derivative(x: xs[i], y: ys[i]) }
                    }
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }

    public func exp() -> Tensor { map(.exp) }
    public func log() -> Tensor { map(.log) }
    public func sqrt() -> Tensor { map(.sqrt) }
    public func rsqrt() -> Tensor { map(.rsqrt) }
    public func tanh() -> Tensor { map(.tanh) }
    public func sigmoid() -> Tensor { map(.sigmoid) }
    /// x·sigmoid(x).
    public func silu() -> Tensor { map(.silu) }
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`) or the exact erf form.
    public func gelu(approximateTanh: Bool = false) -> Tensor { map(approximateTanh ? .geluTanh : .geluErf) }
    public func abs() -> Tensor { map(.abs) }
    public func pow(_ exponent: Double) -> Tensor { map(.power(exponent)) }
    public func clamp(min: Double? = nil, max: Double? = nil) -> Tensor { map(.clamp(min: min, max: max)) }
    public static prefix func - (x: Tensor) -> Tensor { x.map(.negate) }
}

// MARK: - Binary arithmetic with broadcasting

/// A binary elementwise operation.
enum BinaryFunction {
    case add, subtract, multiply, divide

    var name: String {
        switch self { case .add: "add"; case .subtract: "sub"; case .multiply: "mul"; case .divide: "div" }
    }
}

/// The shape two shapes broadcast to (NumPy rules), or nil.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let n = max(a.count, b.count)
    var out = [Int](repeating: 1, count: n)
    for i in 0..<n {
        let x = i < n - a.count ? 1 : a[i - (n - a.count)]
        let y = i < n - b.count ? 1 : b[i - (n - b.count)]
        if x != y && x != 1 && y != 1 { return nil }
        out[i] = x == 1 ? y : x
    }
    return out
}

extension Tensor {
    static func binary(_ op: BinaryFunction, _ a: Tensor, _ b: Tensor) -> Tensor {
        guard let outShape = broadcastShape(a.shape, b.shape) else {
            preconditionFailure("cannot broadcast \(a.shape) with \(b.shape) in \(op.name)")
        }
        var ac = a.computeView, bc = b.computeView
        if ac.dtype != bc.dtype { ac = ac.to(.float64); bc = bc.to(.float64) }
        if bc.count == 1 && ac.shape == outShape { return binaryWithScalar(op, ac, bc) }
        let x = ac.shape == outShape ? ac.contiguous() : ac.expanded(to: outShape).detach().contiguousStorageView()
        let y = bc.shape == outShape ? bc.contiguous() : bc.expanded(to: outShape).detach().contiguousStorageView()
        let out = Tensor(uninitializedShape: outShape, dtype: x.dtype)
        let n = out.count
        func run<F: FloatElement>(_: F.Type) {
            let p = x.pointer(as: F.self), q = y.pointer(as: F.self), r = out.pointer(as: F.self)
            Parallel.forEach(n, minimumChunk: 1 << 15) { range in
                switch op {
                case .add: for i in range { r[i] = p[i] + q[i] }
                case .subtract: for i in range { r[i] = p[i] - q[i] }
                case .multiply: for i in range { r[i] = p[i] * q[i] }
                case .divide: for i in range { r[i] = p[i] / q[i] }
                }
            }
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        let aShape = ac.shape, bShape = bc.shape
        // Backward reads an operand's values only for a product or quotient, and only those the other gradient needs
        // (a sum keeps neither: its operands are freed once forward is done with them).
        let scales = op == .multiply || op == .divide
        let keptX = scales && bc.requiresGrad ? x : nil
        let keptY = scales && (ac.requiresGrad || (op == .divide && bc.requiresGrad)) ? y : nil
        return out.recording(op.name, [ac, bc]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self)
                let p = keptX?.pointer(as: F.self), q = keptY?.pointer(as: F.self)
                // Gradient at the broadcast shape, then summed back to each operand's shape.
                func full(_ body: (UnsafeMutablePointer<F>) -> Void) -> Tensor {
                    let t = Tensor(uninitializedShape: outShape, dtype: F.dtype)
                    body(t.pointer(as: F.self))
                    return t
                }
                if sink.needsGradient(0) {
                    let ga: Tensor
                    switch op {
                    case .add, .subtract: ga = grad
                    case .multiply: ga = full { d in let q = q!; Parallel.forEach(n, minimumChunk: 1 << 15) { r in for i in r { d[i] = g[i] * q[i] } } }
                    case .divide: ga = full { d in let q = q!; Parallel.forEach(n, minimumChunk: 1 << 15) { r in for i in r { d[i] = g[i] / q[i] } } }
                    }
                    sink.give(ga.summed(toShape: aShape), toInput: 0)
                }
                if sink.needsGradient(1) {
                    let gb: Tensor
                    switch op {
                    case .add: gb = grad
                    case .subtract: gb = full { d in Parallel.forEach(n, minimumChunk: 1 << 15) { r in for i in r { d[i] = -g[i] } } }
                    case .multiply: gb = full { d in let p = p!; Parallel.forEach(n, minimumChunk: 1 << 15) { r in for i in r { d[i] = g[i] * p[i] } } }
                    case .divide: gb = full { d in let p = p!, q = q!; Parallel.forEach(n, minimumChunk: 1 << 15) { r in for i in r { d[i] = -g[i] * p[i] / (q[i] * q[i]) } } }
                    }
                    // For add, gb is the upstream gradient: input 0 may have taken it already.
                    let taken = op == .add && sink.needsGradient(0)
                    taken ? sink.add(gb.summed(toShape: bShape), toInput: 1) : sink.give(gb.summed(toShape: bShape), toInput: 1)
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }

    /// `binary` when `b` holds one element: it is read as a number rather than broadcast to a tensor of `a`'s
    /// size, and backward keeps `a`'s values only when `b` itself needs a gradient of a product or quotient.
    private static func binaryWithScalar(_ op: BinaryFunction, _ a: Tensor, _ b: Tensor) -> Tensor {
        let x = a.contiguous(), n = x.count, scalar = b.detach().contiguous()
        let out = Tensor(uninitializedShape: a.shape, dtype: x.dtype)
        func run<F: FloatElement>(_: F.Type) {
            let p = x.pointer(as: F.self), r = out.pointer(as: F.self)
            let v = scalar.pointer(as: F.self)[0]
            Parallel.forEach(n, minimumChunk: 1 << 15) { range in
                switch op {
                case .add: for i in range { r[i] = p[i] + v }
                case .subtract: for i in range { r[i] = p[i] - v }
                case .multiply: for i in range { r[i] = p[i] * v }
                case .divide: for i in range { r[i] = p[i] / v }
                }
            }
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        let bShape = b.shape
        let values: Tensor? = GradMode.isEnabled && b.requiresGrad && (op == .multiply || op == .divide) ? x : nil
        return out.recording(op.name, [a, b]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self), v = scalar.pointer(as: F.self)[0]
                func scaled(_ factor: F) -> Tensor {
                    let t = Tensor(uninitializedShape: grad.shape, dtype: F.dtype)
                    let d = t.pointer(as: F.self)
                    Parallel.forEach(n, minimumChunk: 1 << 15) { r in for i in r { d[i] = g[i] * factor } }
                    return t
                }
                if sink.needsGradient(0) {
                    switch op {
                    case .add, .subtract: sink.give(grad, toInput: 0)
                    case .multiply: sink.give(scaled(v), toInput: 0)
                    case .divide: sink.give(scaled(1 / v), toInput: 0)
                    }
                }
                if sink.needsGradient(1) {
                    var total: F = 0
                    switch op {
                    case .add: for i in 0..<n { total += g[i] }
                    case .subtract: for i in 0..<n { total -= g[i] }
                    case .multiply:
                        let p = values!.pointer(as: F.self)
                        for i in 0..<n { total += g[i] * p[i] }
                    case .divide:
                        let p = values!.pointer(as: F.self)
                        for i in 0..<n { total -= g[i] * p[i] / (v * v) }
                    }
                    let t = Tensor(uninitializedShape: bShape, dtype: F.dtype)
                    t.pointer(as: F.self)[0] = total
                    sink.give(t, toInput: 1)
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }

    /// Sums a gradient at a broadcast shape back down to `target` (the shape before broadcasting).
    public func summed(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        var t = self
        while t.rank > target.count { t = t.sum(axis: 0) }
        for axis in 0..<target.count where target[axis] == 1 && t.shape[axis] != 1 {
            t = t.sum(axis: axis, keepDim: true)
        }
        return t.shape == target ? t : t.reshaped(target)
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor { binary(.add, a, b) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { binary(.subtract, a, b) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { binary(.multiply, a, b) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { binary(.divide, a, b) }
    public static func + (a: Tensor, s: Double) -> Tensor { binary(.add, a, .full([], s, dtype: a.scalarType)) }
    public static func - (a: Tensor, s: Double) -> Tensor { binary(.subtract, a, .full([], s, dtype: a.scalarType)) }
    public static func * (a: Tensor, s: Double) -> Tensor { binary(.multiply, a, .full([], s, dtype: a.scalarType)) }
    public static func / (a: Tensor, s: Double) -> Tensor { binary(.divide, a, .full([], s, dtype: a.scalarType)) }
    public static func * (s: Double, a: Tensor) -> Tensor { a * s }
    public static func + (s: Double, a: Tensor) -> Tensor { a + s }

    private var scalarType: DType { dtype == .float64 ? .float64 : .float32 }

    /// `a` where `condition` is nonzero, else `b` (broadcasting all three).
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        guard let ab = broadcastShape(a.shape, b.shape), let outShape = broadcastShape(condition.shape, ab) else {
            preconditionFailure("where: cannot broadcast \(condition.shape), \(a.shape), \(b.shape)")
        }
        let mask = condition.expanded(to: outShape).detach().contiguousCopy(dtype: .float32).floats().map { $0 != 0 }
        var ac = a.computeView, bc = b.computeView
        if ac.dtype != bc.dtype { ac = ac.to(.float64); bc = bc.to(.float64) }
        let x = ac.expanded(to: outShape).detach().contiguousStorageView()
        let y = bc.expanded(to: outShape).detach().contiguousStorageView()
        let out = Tensor(uninitializedShape: outShape, dtype: x.dtype)
        func run<F: FloatElement>(_: F.Type) {
            let p = x.pointer(as: F.self), q = y.pointer(as: F.self), r = out.pointer(as: F.self)
            for i in 0..<mask.count { r[i] = mask[i] ? p[i] : q[i] }
        }
        x.dtype == .float64 ? run(Double.self) : run(Float.self)
        let aShape = ac.shape, bShape = bc.shape
        return out.recording("where", [ac, bc]) { grad, sink in
            func back<F: FloatElement>(_: F.Type) {
                let g = grad.pointer(as: F.self)
                for (index, keep) in [(0, true), (1, false)] where sink.needsGradient(index) {
                    let t = Tensor(uninitializedShape: outShape, dtype: F.dtype)
                    let d = t.pointer(as: F.self)
                    for i in 0..<mask.count { d[i] = mask[i] == keep ? g[i] : 0 }
                    sink.give(t.summed(toShape: index == 0 ? aShape : bShape), toInput: index)
                }
            }
            grad.dtype == .float64 ? back(Double.self) : back(Float.self)
        }
    }

    /// This tensor with `value` wherever `mask` is nonzero (PyTorch's `masked_fill`).
    public func maskedFill(_ mask: Tensor, _ value: Double) -> Tensor {
        Tensor.where(mask, .full([], value, dtype: scalarType), self)
    }
}
