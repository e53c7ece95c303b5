import CollieFuzzing
import CollieTestSupport
import Foundation
import XCTest

/// The fuzz targets' committed inputs, replayed in a normal build: every seed is a real, valid example that its
/// target accepts, and every crash the fuzzers found (Tests/Fuzz/Crashes) no longer crashes `collie-fuzz`.
final class FuzzCorpusTests: XCTestCase {
    static let corpus = TestPaths.repository.appendingPathComponent("Tests/Fuzz/Corpus")
    static let crashes = TestPaths.repository.appendingPathComponent("Tests/Fuzz/Crashes")

    /// The files directly in `folder` (none when it does not exist), in name order.
    static func files(in folder: URL) -> [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    func testEveryTargetAcceptsEachOfItsSeeds() throws {
        for target in FuzzTarget.allCases {
            let seeds = Self.files(in: Self.corpus.appendingPathComponent(target.rawValue))
            XCTAssertFalse(seeds.isEmpty, "\(target.rawValue) has no seed corpus in \(Self.corpus.path)")
            for seed in seeds {
                let error = target.run([UInt8](try Data(contentsOf: seed)))
                XCTAssertNil(error, "\(target.rawValue) rejects its seed \(seed.lastPathComponent): \(error.map { "\($0)" } ?? "")")
            }
        }
    }

    func testTargetsRejectGarbageWithoutCrashing() {
        let unclosedTag = Array("{% for message in".utf8)
        let garbage: [[UInt8]] = [[], [0xFF], Array(repeating: 0x5B, count: 64), Array("{\"a\": [1, {".utf8), unclosedTag]
        for target in FuzzTarget.allCases {
            // Any text without a tag is a valid template.
            for input in target == .chatTemplate ? [unclosedTag] : garbage {
                XCTAssertNotNil(target.run(input), "\(target.rawValue) accepts \(input)")
            }
        }
    }

    /// Each saved crash input runs in its own `collie-fuzz` process (a crash would end this one), with a time limit.
    func testFoundCrashesNoLongerCrash() throws {
        let fuzzer = try Self.fuzzExecutable()
        let folder = try temporaryFolder(for: self)
        for target in FuzzTarget.allCases {
            for input in Self.files(in: Self.crashes.appendingPathComponent(target.rawValue)) {
                let result = try ChildProcess.run(fuzzer, [target.rawValue, input.path], in: folder, log: "replay",
                                                  environment: ["SWIFT_BACKTRACE": "enable=no"], timeout: 30)
                XCTAssertEqual(result.status, 0, "\(target.rawValue) crashes on \(input.lastPathComponent):\n"
                               + String(result.errors.suffix(2000)))
            }
        }
    }

    /// `$COLLIE_FUZZ_BINARY`, else `collie-fuzz` beside the `collie` that `swift build --build-tests` built.
    static func fuzzExecutable() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["COLLIE_FUZZ_BINARY"] { return URL(fileURLWithPath: path) }
        return try CollieExecutable.url().deletingLastPathComponent().appendingPathComponent("collie-fuzz")
    }
}
