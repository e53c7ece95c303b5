/// Collective communication between the processes of a parallel run (one process per rank).
///
/// Buffers are float32 ranges (gradients, parameters, optimizer state: views of `ParameterBuffer`s) or
/// doubles (losses, token counts, norms). Every rank of the group must call the same collectives in the same
/// order. Two implementations: `SingleProcessCommunicator` (a group of one: every collective is the identity)
/// and the OpenMPI one in `CollieMPI`, used when the program was launched by `mpirun`.
public protocol Communicator: AnyObject {
    /// This process's index in the group, 0..<size.
    var rank: Int { get }
    /// Number of processes in the group.
    var size: Int { get }

    /// Replaces `buffer` on every rank by the element-wise `operation` over all ranks' buffers.
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReductionOperation)
    /// Like `allReduce(_:_:)` for doubles.
    func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReductionOperation)
    /// Starts a sum all-reduce of `buffer` in place and returns at once; the buffer must stay alive and
    /// untouched until the request completes. Requests must be started in the same order on every rank.
    func startAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>) -> CommunicationRequest
    /// Sums `buffer` over all ranks and leaves in `result` (of `counts[rank]` elements) this rank's part:
    /// rank r receives the elements `counts[0..<r].sum ..< counts[0...r].sum` of the sum. `buffer` holds
    /// `counts.sum` elements. Started now, finished by the request (both buffers stay alive until then).
    func startReduceScatter(_ buffer: UnsafeBufferPointer<Float>, into result: UnsafeMutableBufferPointer<Float>,
                            counts: [Int]) -> CommunicationRequest
    /// Gathers in place: rank r's part of `buffer` (at offset `counts[0..<r].sum`, `counts[r]` elements) is
    /// copied into the same place on every other rank.
    func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int])
    /// Copies `root`'s `buffer` into every rank's `buffer`.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int)
    /// Sends `buffer` to rank `destination` (blocks until it may be reused).
    func send(_ buffer: UnsafeRawBufferPointer, to destination: Int, tag: Int)
    /// Starts sending `buffer` to rank `destination` and returns at once; the buffer must stay alive and
    /// untouched until the request completes (pipeline stages send while they go on computing).
    func startSend(_ buffer: UnsafeRawBufferPointer, to destination: Int, tag: Int) -> CommunicationRequest
    /// Receives exactly `buffer.count` bytes from rank `source`.
    func receive(_ buffer: UnsafeMutableRawBufferPointer, from source: Int, tag: Int)
    /// Returns once every rank has called it.
    func barrier()
    /// Splits the group: ranks passing the same `color` form a new group, ordered by `key` (then by rank).
    func split(color: Int, key: Int) -> Communicator
}

/// An element-wise reduction.
public enum ReductionOperation: Sendable {
    case sum, max, min
}

/// A collective that was started and may still be running.
public protocol CommunicationRequest: AnyObject {
    /// Whether it finished (and lets the library make progress on it).
    func test() -> Bool
    /// Blocks until it finished.
    func wait()
}

/// A request that finished when it was made (the single-process collectives).
public final class CompletedRequest: CommunicationRequest {
    public init() {}
    public func test() -> Bool { true }
    public func wait() {}
}

/// The group of one process: every collective leaves the data as it is, since the process already holds the
/// whole sum, gather and broadcast. Lets the same training code run without MPI.
public final class SingleProcessCommunicator: Communicator {
    public init() {}

    public var rank: Int { 0 }
    public var size: Int { 1 }

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReductionOperation) {}
    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReductionOperation) {}
    public func startAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>) -> CommunicationRequest { CompletedRequest() }

    public func startReduceScatter(_ buffer: UnsafeBufferPointer<Float>, into result: UnsafeMutableBufferPointer<Float>,
                                   counts: [Int]) -> CommunicationRequest {
        precondition(counts.count == 1 && counts[0] == buffer.count && result.count == buffer.count,
                     "reduce-scatter over one rank: counts \(counts) for \(buffer.count) elements")
        if let source = buffer.baseAddress, let destination = result.baseAddress, source != UnsafePointer(destination) {
            destination.update(from: source, count: buffer.count)
        }
        return CompletedRequest()
    }

    public func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        precondition(counts == [buffer.count], "all-gather over one rank: counts \(counts) for \(buffer.count) elements")
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        precondition(root == 0, "broadcast from rank \(root) in a group of one")
    }

    public func send(_ buffer: UnsafeRawBufferPointer, to destination: Int, tag: Int) {
        preconditionFailure("send to rank \(destination) in a group of one")
    }

    public func startSend(_ buffer: UnsafeRawBufferPointer, to destination: Int, tag: Int) -> CommunicationRequest {
        preconditionFailure("send to rank \(destination) in a group of one")
    }

    public func receive(_ buffer: UnsafeMutableRawBufferPointer, from source: Int, tag: Int) {
        preconditionFailure("receive from rank \(source) in a group of one")
    }

    public func barrier() {}

    public func split(color: Int, key: Int) -> Communicator { SingleProcessCommunicator() }
}

extension Communicator {
    /// True on rank 0, the rank that logs and writes files.
    public var isMain: Bool { rank == 0 }

    /// The sum of `value` over all ranks.
    public func sum(_ value: Double) -> Double {
        var v = [value]
        v.withUnsafeMutableBufferPointer { allReduce($0, .sum) }
        return v[0]
    }

    /// The element-wise sums of `values` over all ranks.
    public func sum(_ values: [Double]) -> [Double] {
        var v = values
        v.withUnsafeMutableBufferPointer { allReduce($0, .sum) }
        return v
    }

    /// Replaces `values` by their element-wise sums over all ranks.
    public func allReduceSum(_ values: inout [Double]) {
        values.withUnsafeMutableBufferPointer { allReduce($0, .sum) }
    }

    /// The maximum of `value` over all ranks.
    public func maximum(_ value: Double) -> Double {
        var v = [value]
        v.withUnsafeMutableBufferPointer { allReduce($0, .max) }
        return v[0]
    }

    /// Sums a contiguous float32 tensor over all ranks, in place.
    public func allReduce(_ tensor: Tensor) {
        precondition(tensor.dtype == .float32 && tensor.isContiguous, "all-reduce needs a contiguous float32 tensor")
        allReduce(UnsafeMutableBufferPointer(start: tensor.pointer(as: Float.self), count: tensor.count), .sum)
    }

    /// `count` elements split into `size` contiguous parts as evenly as possible (the first `count % size`
    /// parts one longer): the element ranges each rank owns under ZeRO.
    public func partition(_ count: Int) -> [Range<Int>] { Self.partition(count, into: size) }

    /// `count` elements split into `parts` contiguous ranges as evenly as possible.
    public static func partition(_ count: Int, into parts: Int) -> [Range<Int>] {
        precondition(parts >= 1 && count >= 0)
        var ranges: [Range<Int>] = []
        var start = 0
        for r in 0..<parts {
            let length = count / parts + (r < count % parts ? 1 : 0)
            ranges.append(start..<(start + length))
            start += length
        }
        return ranges
    }
}
