import CCollieKernels
import XCTest

/// Level 5 (AMX) is detected only where the tile instructions can run: a CPU or hypervisor that advertises AMX without
/// usable tiles must leave the process at level 4, not kill it with SIGILL at its first kernel call.
final class KernelLevelDetectionTests: XCTestCase {
    // CPUID leaf 0x1D / 0x1E as Sapphire Rapids reports them.
    let palettes: UInt32 = 1
    let paletteEAX: UInt32 = 1024 << 16 | 8192   // bytes per tile, total tile bytes
    let paletteEBX: UInt32 = 8 << 16 | 64        // tile names, bytes per row
    let paletteECX: UInt32 = 16                  // rows
    let tmulEBX: UInt32 = 64 << 8 | 16           // N bytes, K

    func testSapphireRapidsTilesFitTheKernelsConfiguration() {
        XCTAssertEqual(collie_amx_tiles_described(palettes, paletteEAX, paletteEBX, paletteECX, 1, tmulEBX), 1)
        XCTAssertEqual(collie_amx_tiles_described(palettes, paletteEAX, paletteEBX, paletteECX, 0, 0), 1,
                       "a CPU without leaf 0x1E is judged by its palette")
    }

    func testAdvertisedAMXWithoutUsableTilesIsRejected() {
        XCTAssertEqual(collie_amx_tiles_described(0, 0, 0, 0, 1, 0), 0, "zero palettes (a misconfigured hypervisor)")
        XCTAssertEqual(collie_amx_tiles_described(0, paletteEAX, paletteEBX, paletteECX, 1, tmulEBX), 0)
        XCTAssertEqual(collie_amx_tiles_described(palettes, paletteEAX, 8 << 16 | 32, paletteECX, 1, tmulEBX), 0,
                       "32-byte rows")
        XCTAssertEqual(collie_amx_tiles_described(palettes, paletteEAX, 4 << 16 | 64, paletteECX, 1, tmulEBX), 0,
                       "four tile names")
        XCTAssertEqual(collie_amx_tiles_described(palettes, paletteEAX, paletteEBX, 8, 1, tmulEBX), 0, "eight rows")
        XCTAssertEqual(collie_amx_tiles_described(palettes, 512 << 16 | 4096, paletteEBX, paletteECX, 1, tmulEBX), 0,
                       "512-byte tiles")
        XCTAssertEqual(collie_amx_tiles_described(palettes, paletteEAX, paletteEBX, paletteECX, 1, 64 << 8 | 8), 0,
                       "TMUL K 8")
        XCTAssertEqual(collie_amx_tiles_described(palettes, paletteEAX, paletteEBX, paletteECX, 1, 32 << 8 | 16), 0,
                       "TMUL N 32 bytes")
        XCTAssertEqual(collie_amx_tiles_described(palettes, paletteEAX, paletteEBX, paletteECX, 1, 0), 0,
                       "leaf 0x1E present but zero")
    }

    /// The guarded hardware check returns where the instructions fault (here: the tile instructions on a CPU without
    /// AMX) and passes exactly where level 5 was detected.
    func testProbeReturnsWhereTileInstructionsFault() throws {
        #if arch(x86_64)
        let probed = collie_amx_probe()
        if collie_cpu_advertises_amx() == 0 {
            XCTAssertEqual(probed, -1, "no AMX: the first tile instruction faults and the probe says so")
        } else {
            XCTAssertEqual(probed == 1, collie_kernel_level() == 5, "level 5 exactly where the check passes")
        }
        XCTAssertEqual(collie_amx_probe(), probed, "the guard is restored: a second probe ends the same way")
        #else
        throw XCTSkip("AMX is x86-only")
        #endif
    }
}
