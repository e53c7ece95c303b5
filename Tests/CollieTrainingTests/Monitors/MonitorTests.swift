import CollieTestSupport
import Foundation
import XCTest
import CollieEngine
@testable import CollieTraining

/// Monitors: TensorBoard event files (bytes, CRCs, a reader's view), CSV logs, the progress
/// bar and its plain-log fallback, and the memory reader.
final class MonitorTests: XCTestCase {
    func step(_ n: Int, total: Int? = 4, loss: Double = 2.5, seconds: Double = 1) -> TrainingEvent {
        .step(TrainingStep(step: n, totalSteps: total, epoch: 0, loss: loss, learningRate: 3e-4,
                           gradientNorm: n == 2 ? nil : 0.75, tokens: 2048, tokensPerSecond: 2048 / seconds,
                           stepSeconds: seconds, peakMemoryBytes: 3 << 30))
    }

    // MARK: - TensorBoard

    func testCRC32CMatchesKnownVectors() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        // RFC 3720 (iSCSI), appendix B.4.
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
    }

    func testMaskedCRCRotatesRightBy15AndAddsTheTFRecordConstant() {
        XCTAssertEqual(CRC32C.masked(0), 0xA282_EAD8)
        XCTAssertEqual(CRC32C.masked(0x0000_8000), 0xA282_EAD9)
        XCTAssertEqual(CRC32C.masked(0xE306_9283), ((0xE306_9283 as UInt32) >> 15 | (0xE306_9283 as UInt32) << 17) &+ 0xA282_EAD8)
    }

    func testScalarEventIsEncodedInTheProtobufWireFormat() throws {
        let event = TensorBoardEvent(wallTime: 1.5, step: 3, scalars: [("a", 2)])
        let value: [UInt8] = [0x0A, 0x01, 0x61, 0x15, 0x00, 0x00, 0x00, 0x40]   // tag "a", simple_value 2.0f
        let summary: [UInt8] = [0x0A, UInt8(value.count)] + value                   // repeated Value value = 1
        let expected: [UInt8] = [0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F]                // double wall_time = 1
            + [0x10, 0x03]                                                          // int64 step = 2
            + [0x2A, UInt8(summary.count)] + summary                                // Summary summary = 5
        XCTAssertEqual(try event.serialized(), expected)
        let version = try TensorBoardEvent(wallTime: 0, step: 0, fileVersion: "brain.Event:2").serialized()
        XCTAssertEqual(Array(version.suffix(15)), [0x1A, 13] + Array("brain.Event:2".utf8))
        XCTAssertEqual(try TensorBoardEvent(wallTime: 0, step: 300).serialized().suffix(3), [0x10, 0xAC, 0x02], "varint 300")
    }

    func testRecordFramesThePayloadWithLengthAndMaskedCRCs() throws {
        let payload: [UInt8] = Array("hello".utf8)
        let record = TensorBoardEvent.record(payload)
        XCTAssertEqual(record.count, 8 + 4 + 5 + 4)
        XCTAssertEqual(Array(record[0..<8]), [5, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(try EventFileReader.records(record), [payload])
        var corrupted = record
        corrupted[13] ^= 0x01
        XCTAssertThrowsError(try EventFileReader.records(corrupted)) { error in
            XCTAssertTrue("\(error)".contains("payload CRC mismatch"), "\(error)")
        }
    }

    func testTensorBoardFileDecodesToTheEventsWritten() throws {
        // COLLIE_TENSORBOARD_OUTPUT keeps the file for scripts/checks/check_tensorboard.py.
        let directory = try ProcessInfo.processInfo.environment["COLLIE_TENSORBOARD_OUTPUT"].map { URL(fileURLWithPath: $0) }
            ?? temporaryFolder(for: self)
        let clock = Date(timeIntervalSince1970: 1_700_000_000.25)
        let monitor = try TensorBoardMonitor(logDirectory: directory) { clock }
        XCTAssertTrue(monitor.url.lastPathComponent.hasPrefix("events.out.tfevents.1700000000."), monitor.url.lastPathComponent)
        XCTAssertTrue(monitor.url.lastPathComponent.hasSuffix(ProcessInfo.processInfo.hostName))
        try monitor.record(.started(step: 0, totalSteps: 3))
        for n in 1...3 { try monitor.record(step(n, loss: 3.0 / Double(n))) }
        try monitor.record(.evaluation(step: 3, metrics: ["loss": 0.875, "accuracy": 0.5]))
        try monitor.record(.finished(step: 3))
        // Written as recorded, before close: TensorBoard reads a live file.
        let events = try EventFileReader.events(at: monitor.url)
        try monitor.close()

        XCTAssertEqual(events.count, 5)
        XCTAssertEqual(events[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(events[0].wallTime, 1_700_000_000.25)
        for n in 1...3 {
            let e = events[n]
            XCTAssertEqual(e.step, Int64(n))
            XCTAssertEqual(e.wallTime, 1_700_000_000.25)
            XCTAssertEqual(e.scalars["train/loss"], Float(3.0 / Double(n)))
            XCTAssertEqual(e.scalars["train/learning_rate"], Float(3e-4))
            XCTAssertEqual(e.scalars["train/tokens_per_second"], 2048)
            XCTAssertEqual(e.scalars["train/peak_memory_gib"], 3)
            XCTAssertEqual(e.scalars["train/grad_norm"], n == 2 ? nil : 0.75)
        }
        XCTAssertEqual(events[4].step, 3)
        XCTAssertEqual(events[4].tags, ["eval/accuracy", "eval/loss"])
        XCTAssertEqual(events[4].scalars, ["eval/accuracy": 0.5, "eval/loss": 0.875])
    }

    /// The bytes of an event file, including the edge cases of field presence (zero step and time, an empty tag,
    /// a zero value, an event without scalars, a negative step), as the writer has always produced them.
    func testEventFileBytesAreStable() throws {
        let directory = try temporaryFolder(for: self)
        let start = Date(timeIntervalSince1970: 1_700_000_000.25)
        let writer = try TensorBoardEventWriter(directory: directory, now: start)
        try writer.addScalars([("train/loss", 2.5), ("train/learning_rate", 3e-4)], step: 1, wallTime: start)
        try writer.addScalars([("", 0)], step: 0, wallTime: Date(timeIntervalSince1970: 0))
        try writer.addScalars([], step: 300, wallTime: start)
        try writer.addScalar("eval/accuracy", -0.5, step: -1, wallTime: start)
        try writer.close()
        let hex = try Data(contentsOf: writer.url).map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(hex, [  // one TFRecord per line: length, its masked CRC, the Event, its masked CRC
            "1a00000000000000129bd82d0900001040fc54d94110001a0d627261696e2e4576656e743a3252ef9793",
            "3c00000000000000c8b7a3520900001040fc54d94110012a2f0a110a0a747261696e2f6c6f737315000020400a1a0a13747261696e2f6c6561726e696e675f726174651552499d395c022827",
            "16000000000000004f61be2809000000000000000010002a090a070a001500000000d68dd307",
            "0c00000000000000f4c8fe0a0900001040fc54d94110ac020c9e4eaa",
            "2c00000000000000f4aecc450900001040fc54d94110ffffffffffffffffff012a160a140a0d6576616c2f616363757261637915000000bf16bac871",
        ].joined())
    }

    func testSecondWriterInTheSameSecondGetsItsOwnFile() throws {
        let directory = try temporaryFolder(for: self)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let a = try TensorBoardEventWriter(directory: directory, now: now)
        let b = try TensorBoardEventWriter(directory: directory, now: now)
        XCTAssertNotEqual(a.url, b.url)
        XCTAssertTrue(b.url.lastPathComponent.contains("tfevents"))
    }

    // MARK: - CSV

    func testCSVHasAHeaderAndOneRowPerStepReadableBeforeClose() throws {
        let url = try temporaryFolder(for: self).appendingPathComponent("logs/run-1.csv")
        let monitor = try CSVMonitor(url: url) { Date(timeIntervalSince1970: 1_700_000_000.5) }
        try monitor.record(step(1))
        try monitor.record(step(2))
        try monitor.record(.checkpoint(step: 2, path: "/tmp/x"))
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 4)
        XCTAssertEqual(lines[0], "step,epoch,loss,learning_rate,gradient_norm,tokens,tokens_per_second,step_seconds,peak_memory_bytes,wall_time")
        XCTAssertEqual(lines[1], "1,0,2.5,0.0003,0.75,2048,2048.0,1.0,3221225472,1700000000.5")
        XCTAssertEqual(lines[2], "2,0,2.5,0.0003,,2048,2048.0,1.0,3221225472,1700000000.5", "unknown norm: empty field")
        XCTAssertEqual(lines[3], "")

        try monitor.record(.evaluation(step: 2, metrics: ["ppl, test": 12.5, "acc": 0.25]))
        try monitor.close()
        try monitor.record(step(3))
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8).split(separator: "\n").count, 3, "closed: ignored")
        XCTAssertEqual(try String(contentsOf: monitor.evaluationURL, encoding: .utf8),
                       "step,metric,value,wall_time\n2,acc,0.25,1700000000.5\n2,\"ppl, test\",12.5,1700000000.5\n")
        XCTAssertEqual(monitor.evaluationURL.lastPathComponent, "run-1.evaluation.csv")
    }

    // MARK: - Progress

    func testProgressBarRedrawsOneLineOnATerminal() throws {
        var output = ""
        let monitor = ProgressMonitor(totalSteps: 4, isTerminal: true, barWidth: 8) { output += $0 }
        try monitor.record(step(1, seconds: 2))
        try monitor.record(step(2, seconds: 1))
        XCTAssertFalse(output.contains("\n"), "redrawn in place: \(output.debugDescription)")
        XCTAssertEqual(output.components(separatedBy: "\r").count, 3)
        XCTAssertTrue(output.hasSuffix("\rstep 2/4 [####....]  50% | loss 2.5 | lr 3.00e-04 | 2.0k tok/s | ETA 0:03\u{1B}[K"),
                      output.debugDescription)
        try monitor.record(.evaluation(step: 2, metrics: ["loss": 1.25]))
        XCTAssertTrue(output.hasSuffix("\u{1B}[K\neval step 2 | loss 1.25\n"), output.debugDescription)
        try monitor.record(step(3))
        try monitor.close()
        XCTAssertTrue(output.hasSuffix("ETA 0:01\u{1B}[K\n"), output.debugDescription)
    }

    func testPlainLinesEveryIntervalWhenNotATerminal() throws {
        var output = ""
        let monitor = ProgressMonitor(isTerminal: false, logInterval: 2) { output += $0 }
        try monitor.record(.started(step: 0, totalSteps: 5))
        for n in 1...5 { try monitor.record(step(n, total: nil)) }
        try monitor.record(.finished(step: 5))
        let lines = output.split(separator: "\n")
        XCTAssertFalse(output.contains("\r"))
        XCTAssertEqual(lines.count, 4, output)
        XCTAssertEqual(lines[0], "step 2/5 | epoch 0 | loss 2.5 | lr 3.00e-04 | 2048 tok/s | 1.000 s/step | peak 3.00 GiB | ETA 0:03")
        XCTAssertTrue(lines[1].hasPrefix("step 4/5 | epoch 0 | loss 2.5 | lr 3.00e-04 | grad norm 0.75 |"), String(lines[1]))
        XCTAssertTrue(lines[2].hasPrefix("step 5/5 |") && lines[2].hasSuffix("ETA 0:00"), String(lines[2]))
        XCTAssertEqual(lines[3], "finished at step 5")
    }

    func testDurationsAndRatesAreShort() {
        XCTAssertEqual(ProgressMonitor.duration(59.6), "1:00")
        XCTAssertEqual(ProgressMonitor.duration(3725), "1:02:05")
        XCTAssertEqual(ProgressMonitor.compact(950), "950")
        XCTAssertEqual(ProgressMonitor.compact(1_234_567), "1.2M")
    }

    // MARK: - Fan-out and memory

    func testMonitorGroupCallsEveryMonitorThenRethrows() throws {
        final class Failing: TrainingMonitor {
            func record(_ event: TrainingEvent) throws { throw CocoaError(.fileWriteOutOfSpace) }
            func close() throws {}
        }
        var output = ""
        let group = MonitorGroup([Failing(), ProgressMonitor(isTerminal: false) { output += $0 }])
        XCTAssertThrowsError(try group.record(step(1)))
        XCTAssertTrue(output.hasPrefix("step 1/4"), "the second monitor still ran")
    }

    func testPeakResidentMemoryIsReadFromProcStatus() throws {
        let status = "Name:\tcollie\nVmPeak:\t  900 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n"
        XCTAssertEqual(MemoryUsage.bytes(ofField: "VmHWM", inStatus: status), 2048 * 1024)
        XCTAssertEqual(MemoryUsage.bytes(ofField: "VmRSS", inStatus: status), 1024 * 1024)
        XCTAssertNil(MemoryUsage.bytes(ofField: "VmSwap", inStatus: status))
        #if os(Linux)
        let peak = try XCTUnwrap(MemoryUsage.peakResidentBytes())
        let current = try XCTUnwrap(MemoryUsage.residentBytes())
        XCTAssertGreaterThan(current, 1 << 20)
        XCTAssertGreaterThanOrEqual(peak, current)
        #endif
    }
}
