import Foundation
import XCTest
@testable import CollieEngine

/// A minimal safetensors reader for test fixtures (not the product's checkpoint loader).
///
/// The format: an 8-byte little-endian header length N, N bytes of JSON mapping each name to
/// `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the byte after the
/// header), then the raw little-endian tensor data. Only the dtypes the fixtures use are read.
enum SafeTensorsFixture {
    enum Failure: Error, CustomStringConvertible {
        case malformed(String)
        var description: String { switch self { case .malformed(let why): "malformed safetensors: \(why)" } }
    }

    private static let dtypes: [String: DType] = [
        "F32": .float32, "F64": .float64, "BF16": .bfloat16, "F16": .float16, "I64": .int64, "I32": .int32,
    ]

    /// Parses every tensor in `data` into a contiguous `Tensor` with the file's dtype and shape.
    static func parse(_ data: Data) throws -> [String: Tensor] {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else { throw Failure.malformed("shorter than its 8-byte header length") }
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(bytes[i]) << (8 * i) }
        let dataStart = 8 + headerLength
        guard headerLength > 0, dataStart <= bytes.count else { throw Failure.malformed("header length \(headerLength)") }
        let json = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
        guard let header = json as? [String: Any] else { throw Failure.malformed("header is not a JSON object") }
        var result: [String: Tensor] = [:]
        for (name, entry) in header where name != "__metadata__" {
            guard let info = entry as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shape = (info["shape"] as? [NSNumber])?.map(\.intValue),
                  let offsets = (info["data_offsets"] as? [NSNumber])?.map(\.intValue), offsets.count == 2
            else { throw Failure.malformed("entry \(name)") }
            guard let dtype = dtypes[dtypeName] else { throw Failure.malformed("unsupported dtype \(dtypeName) for \(name)") }
            let tensor = Tensor(uninitializedShape: shape, dtype: dtype)
            let byteCount = tensor.count * dtype.size
            let begin = dataStart + offsets[0], end = dataStart + offsets[1]
            guard end - begin == byteCount, begin >= dataStart, end <= bytes.count else {
                throw Failure.malformed("\(name): offsets \(offsets) do not hold \(shape) \(dtypeName)")
            }
            bytes.withUnsafeBytes { raw in
                tensor.storage.data.copyMemory(from: raw.baseAddress! + begin, byteCount: byteCount)
            }
            result[name] = tensor
        }
        return result
    }
}

/// The PyTorch reference values in `Fixtures/ops.safetensors`, made by scripts/fixtures/make_engine_fixtures.py.
enum OpsFixture {
    /// Parsed once; tests only ever see copies (see `tensor(_:)`).
    nonisolated(unsafe) private static let all: [String: Tensor] = {
        guard let url = Bundle.module.url(forResource: "ops", withExtension: "safetensors", subdirectory: "Fixtures") else {
            fatalError("Fixtures/ops.safetensors is missing from the test bundle; run scripts/fixtures/make_engine_fixtures.py")
        }
        do { return try SafeTensorsFixture.parse(Data(contentsOf: url)) } catch { fatalError("\(url.path): \(error)") }
    }()

    /// Whether the fixture holds `key`.
    static func has(_ key: String) -> Bool { all[key] != nil }

    /// A fresh copy of the fixture tensor `key` (so tests can set `requiresGrad` and collect
    /// gradients without affecting each other).
    static func tensor(_ key: String, file: StaticString = #filePath, line: UInt = #line) -> Tensor {
        guard let t = all[key] else {
            XCTFail("fixture has no tensor '\(key)'", file: file, line: line)
            fatalError("fixture has no tensor '\(key)'")
        }
        return t.contiguousCopy()
    }

    /// A 0-d float parameter saved as `<name>.p.<key>`.
    static func double(_ name: String, _ key: String) -> Double { tensor("\(name).p.\(key)").doubles()[0] }
    /// A 0-d integer parameter saved as `<name>.p.<key>`.
    static func int(_ name: String, _ key: String) -> Int { tensor("\(name).p.\(key)").ints()[0] }
    /// A 1-d integer list parameter saved as `<name>.p.<key>`.
    static func ints(_ name: String, _ key: String) -> [Int] { tensor("\(name).p.\(key)").ints() }
}

/// Asserts `actual` has `expected`'s shape and that every element is within
/// `relative × max|expected|` of it (NaN matches NaN; infinities must match exactly).
func assertClose(_ actual: Tensor, _ expected: Tensor, relative: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.shape == expected.shape else {
        XCTFail("\(what): shape \(actual.shape), expected \(expected.shape)", file: file, line: line)
        return
    }
    let a = actual.doubles(), e = expected.doubles()
    let scale = e.lazy.filter(\.isFinite).map(Swift.abs).max() ?? 0
    let allowed = relative * Swift.max(scale, 1e-30)
    var worst = 0.0, worstIndex = -1
    for i in 0..<e.count {
        if e[i].isNaN || !e[i].isFinite || a[i].isNaN || !a[i].isFinite {
            let same = (e[i].isNaN && a[i].isNaN) || e[i] == a[i]
            if !same { XCTFail("\(what): element \(i) is \(a[i]), expected \(e[i])", file: file, line: line); return }
            continue
        }
        let d = Swift.abs(a[i] - e[i])
        if d > worst { worst = d; worstIndex = i }
    }
    if worst > allowed {
        XCTFail("\(what): max |difference| \(worst) at element \(worstIndex) (\(a[worstIndex]) vs expected "
                + "\(e[worstIndex])) exceeds \(relative) × max|expected| (\(scale)) = \(allowed)", file: file, line: line)
    }
}
