import Foundation

/// The machine's peak measured again beside the timed steps of `collie bench train` (one short run after each step,
/// outside its time), for an MFU that holds on a shared host: there the cached peak is what the CPU did once, while
/// other tenants can take a share of it during the run — on one Ice Lake Xeon the peak measured 135–177 GFLOP/s on one
/// thread within an hour. MFU against the median of these samples is the step's speed against the arithmetic the
/// host gave the run.
struct PeakBeside {
    /// Seconds of each sample: short beside a step (0.5 s tiny, 8 s small), long enough to be steady.
    static let sampleSeconds = 0.1
    /// Below this share of the cached peak, the run is flagged as having had less of the machine.
    static let busyShare = 0.9

    /// GFLOP/s, in step order.
    let samples: [Double]
    let median: Double

    /// nil without samples (no vector FMA to measure).
    init?(samples: [Double]) {
        guard !samples.isEmpty else { return nil }
        self.samples = samples
        let sorted = samples.sorted()
        median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// The text report: the samples' range and median, MFU against the median, and a warning when the host gave the
    /// run clearly less than the cached peak.
    func line(gflops: Double, cachedPeak: Double) -> String {
        var text = String(format: "peak beside the steps %.1f–%.1f GFLOP/s (median %.1f of %d): MFU %.1f%% of that",
                          samples.min()!, samples.max()!, median, samples.count, 100 * gflops / median)
        if median < Self.busyShare * cachedPeak {
            text += String(format: " — the host gave this run %.0f%% of the cached peak (other work on the machine?)",
                           100 * median / cachedPeak)
        }
        return text
    }
}
