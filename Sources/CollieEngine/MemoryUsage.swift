import Foundation

/// The process's resident memory, from `/proc/self/status` on Linux (`getrusage` where that is missing).
///
/// Lives in the engine beside `StoragePool`, the other side of the memory story: the pool says what tensors
/// hold, this says what the process holds. Every reading of `/proc/self/status` goes through
/// `bytes(ofField:)`.
public enum MemoryUsage {
    /// Starts a new peak: sets `VmHWM` to the current resident set (Linux ≥ 4.0, through
    /// `/proc/self/clear_refs`), so a later `peakResidentBytes()` covers what follows — training, not
    /// the model's construction. Returns false where the system has no such reset.
    @discardableResult
    public static func resetPeakResident() -> Bool {
        (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil
    }

    /// Peak resident set size in bytes (`VmHWM`), or nil where it cannot be read.
    public static func peakResidentBytes() -> Int? {
        if let bytes = bytes(ofField: "VmHWM") { return bytes }
        var usage = rusage()
        #if os(Linux)
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return nil }
        return Int(usage.ru_maxrss) * 1024  // kilobytes on Linux
        #else
        guard getrusage(RUSAGE_SELF, &usage) == 0 else { return nil }
        return Int(usage.ru_maxrss)  // bytes on macOS
        #endif
    }

    /// Current resident set size in bytes (`VmRSS`), or nil where it cannot be read.
    public static func residentBytes() -> Int? {
        bytes(ofField: "VmRSS")
    }

    /// A field of this process's `/proc/self/status` (`VmHWM`, `VmRSS`, …) in bytes, or nil where the file
    /// or the field is missing.
    public static func bytes(ofField field: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        return bytes(ofField: field, inStatus: status)
    }

    /// The value of a `Name:   1234 kB` line of a `/proc/<pid>/status` text, in bytes.
    public static func bytes(ofField field: String, inStatus status: String) -> Int? {
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            let parts = line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let number = parts.first.flatMap({ Int($0) }) else { return nil }
            let unit = parts.count > 1 ? parts[1].lowercased() : "b"
            switch unit {
            case "kb": return number * 1024
            case "mb": return number * 1024 * 1024
            case "gb": return number * 1024 * 1024 * 1024
            default: return number
            }
        }
        return nil
    }
}
