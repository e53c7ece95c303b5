import CMPI
import CollieEngine
import Foundation

/// A `Communicator` over an OpenMPI communicator: the processes `mpirun` started, or a group split from them.
///
/// `world()` initializes MPI once (thread level "funneled": only the thread that initialized MPI calls it;
/// Collie's worker threads never do) and finalizes it at exit. All calls block except the `start…` ones,
/// which return a request that `test()` drives and `wait()` completes.
/// Sendable without checks because MPI runs at thread level "funneled": the thread that initialized MPI makes
/// every call, so an instance is never used by two threads at once.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    private let communicator: MPI_Comm?
    public let rank: Int
    public let size: Int

    private init(_ communicator: MPI_Comm?) {
        self.communicator = communicator
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(communicator, &r)
        MPI_Comm_size(communicator, &s)
        rank = Int(r)
        size = Int(s)
    }

    /// Whether this process was started by `mpirun` (OpenMPI sets `OMPI_COMM_WORLD_SIZE`; other launchers
    /// `PMI_SIZE`).
    public static var isLaunchedByMPIRun: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMI_SIZE"] != nil
    }

    /// All processes of the run (MPI_COMM_WORLD); initializes MPI on the first call. Without `mpirun` MPI
    /// starts as a singleton: a world of one.
    public static func world() -> MPICommunicator { worldCommunicator }

    /// Initialized once, on first use (Swift runs a static's initializer exactly once, thread-safely).
    private static let worldCommunicator: MPICommunicator = {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            var provided: Int32 = 0
            MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
            atexit {
                var finalized: Int32 = 0
                MPI_Finalized(&finalized)
                if finalized == 0 { MPI_Finalize() }
            }
        }
        return MPICommunicator(collie_mpi_comm_world())
    }()

    /// Ends every process of the run with `exitCode` (MPI_Abort): for an error on one rank while the others may
    /// be waiting for it in a collective.
    public static func abortAll(exitCode: Int32) -> Never {
        MPI_Abort(collie_mpi_comm_world(), exitCode)
        exit(exitCode)
    }

    // MARK: - Collectives

    /// MPI counts are 32-bit: larger buffers go in pieces.
    private static let largestCount = Int(Int32.max / 2)

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReductionOperation) {
        allReduce(UnsafeMutableRawPointer(buffer.baseAddress), buffer.count, collie_mpi_float(), operation)
    }

    public func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReductionOperation) {
        allReduce(UnsafeMutableRawPointer(buffer.baseAddress), buffer.count, collie_mpi_double(), operation)
    }

    private func allReduce(_ base: UnsafeMutableRawPointer?, _ count: Int, _ type: MPI_Datatype?,
                           _ operation: ReductionOperation) {
        guard let base, count > 0 else { return }
        var elementSize: Int32 = 0
        MPI_Type_size(type, &elementSize)
        var start = 0
        while start < count {
            let n = min(Self.largestCount, count - start)
            check(MPI_Allreduce(collie_mpi_in_place(), base + start * Int(elementSize), Int32(n), type,
                                Self.handle(operation), communicator), "MPI_Allreduce")
            start += n
        }
    }

    public func startAllReduce(_ buffer: UnsafeMutableBufferPointer<Float>) -> CommunicationRequest {
        precondition(buffer.count <= Self.largestCount, "a started all-reduce holds at most \(Self.largestCount) elements")
        let request = MPIRequest()
        guard buffer.count > 0 else { return request }
        check(MPI_Iallreduce(collie_mpi_in_place(), buffer.baseAddress, Int32(buffer.count), collie_mpi_float(),
                             collie_mpi_sum(), communicator, &request.handle), "MPI_Iallreduce")
        return request
    }

    public func startReduceScatter(_ buffer: UnsafeBufferPointer<Float>, into result: UnsafeMutableBufferPointer<Float>,
                                   counts: [Int]) -> CommunicationRequest {
        precondition(counts.count == size && counts.reduce(0, +) == buffer.count && result.count == counts[rank],
                     "reduce-scatter: counts \(counts) for \(buffer.count) elements, \(result.count) received here")
        precondition(buffer.count <= Self.largestCount, "a reduce-scatter holds at most \(Self.largestCount) elements")
        let request = MPIRequest(counts: counts.map { Int32($0) })
        // MPI reads the counts until the operation completes: they live in the request.
        check(MPI_Ireduce_scatter(buffer.baseAddress, result.baseAddress, request.counts, collie_mpi_float(),
                                  collie_mpi_sum(), communicator, &request.handle), "MPI_Ireduce_scatter")
        return request
    }

    public func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, counts: [Int]) {
        precondition(counts.count == size && counts.reduce(0, +) == buffer.count,
                     "all-gather: counts \(counts) for \(buffer.count) elements")
        precondition(buffer.count <= Self.largestCount, "an all-gather holds at most \(Self.largestCount) elements")
        var displacements: [Int32] = []
        var offset: Int32 = 0
        for c in counts { displacements.append(offset); offset += Int32(c) }
        let counts32 = counts.map { Int32($0) }
        check(MPI_Allgatherv(collie_mpi_in_place(), 0, collie_mpi_float(), buffer.baseAddress, counts32, displacements,
                             collie_mpi_float(), communicator), "MPI_Allgatherv")
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {
        var start = 0
        while start < buffer.count {
            let n = min(Self.largestCount, buffer.count - start)
            check(MPI_Bcast(buffer.baseAddress! + start, Int32(n), collie_mpi_byte(), Int32(root), communicator),
                  "MPI_Bcast")
            start += n
        }
    }

    public func send(_ buffer: UnsafeRawBufferPointer, to destination: Int, tag: Int) {
        precondition(buffer.count <= Self.largestCount, "a message holds at most \(Self.largestCount) bytes")
        check(MPI_Send(buffer.baseAddress, Int32(buffer.count), collie_mpi_byte(), Int32(destination), Int32(tag),
                       communicator), "MPI_Send")
    }

    public func startSend(_ buffer: UnsafeRawBufferPointer, to destination: Int, tag: Int) -> CommunicationRequest {
        precondition(buffer.count <= Self.largestCount, "a message holds at most \(Self.largestCount) bytes")
        let request = MPIRequest()
        check(MPI_Isend(buffer.baseAddress, Int32(buffer.count), collie_mpi_byte(), Int32(destination), Int32(tag),
                        communicator, &request.handle), "MPI_Isend")
        return request
    }

    public func receive(_ buffer: UnsafeMutableRawBufferPointer, from source: Int, tag: Int) {
        precondition(buffer.count <= Self.largestCount, "a message holds at most \(Self.largestCount) bytes")
        check(MPI_Recv(buffer.baseAddress, Int32(buffer.count), collie_mpi_byte(), Int32(source), Int32(tag),
                       communicator, collie_mpi_status_ignore()), "MPI_Recv")
    }

    public func barrier() { check(MPI_Barrier(communicator), "MPI_Barrier") }

    public func split(color: Int, key: Int) -> Communicator {
        var group: MPI_Comm? = collie_mpi_comm_null()
        check(MPI_Comm_split(communicator, Int32(color), Int32(key), &group), "MPI_Comm_split")
        return MPICommunicator(group)
    }

    private static func handle(_ operation: ReductionOperation) -> MPI_Op? {
        switch operation {
        case .sum: collie_mpi_sum()
        case .max: collie_mpi_max()
        case .min: collie_mpi_min()
        }
    }

    /// MPI's default error handler aborts the job on failure; a code that comes back anyway is a bug.
    private func check(_ code: Int32, _ call: String) {
        precondition(code == MPI_SUCCESS, "\(call) failed with MPI error \(code) on rank \(rank)")
    }
}

/// An MPI request; `wait()` is called by `deinit` if nobody did, so buffers are never released under a
/// running operation.
final class MPIRequest: CommunicationRequest {
    var handle: MPI_Request? = collie_mpi_request_null()
    let counts: UnsafeMutablePointer<Int32>?
    private var done = false

    init(counts: [Int32] = []) {
        if counts.isEmpty {
            self.counts = nil
        } else {
            let storage = UnsafeMutablePointer<Int32>.allocate(capacity: counts.count)
            storage.initialize(from: counts, count: counts.count)
            self.counts = storage
        }
    }

    func test() -> Bool {
        if done { return true }
        var flag: Int32 = 0
        MPI_Test(&handle, &flag, collie_mpi_status_ignore())
        done = flag != 0
        return done
    }

    func wait() {
        if done { return }
        MPI_Wait(&handle, collie_mpi_status_ignore())
        done = true
    }

    deinit {
        wait()
        counts?.deallocate()
    }
}
