/// The processes of a run laid out as a dp × tp × pp grid, with a sub-communicator along each axis.
///
/// Megatron's rank order: tensor-parallel ranks are neighbours (fastest), then data-parallel, then pipeline:
///
///     rank = pp · (dp_size · tp_size) + dp · tp_size + tp
///
/// so with dp 2 × tp 2 ranks 0 and 1 hold the two halves of one model replica and ranks 2 and 3 another. The
/// tensor-parallel group of a rank is the ranks of the same (dp, pp); its data-parallel group the ranks of the
/// same (tp, pp); its pipeline group the ranks of the same (dp, tp).
public final class ProcessGrid {
    /// Every process of the run.
    public let world: Communicator
    public let dataParallelSize, tensorParallelSize, pipelineParallelSize: Int
    /// This rank's coordinates on the grid.
    public let dataParallelRank, tensorParallelRank, pipelineParallelRank: Int
    /// The ranks that hold the other slices of this rank's layers (same dp and pp coordinates).
    public let tensorParallel: Communicator
    /// The ranks that hold the same slices of the model and train on other rows (same tp and pp coordinates).
    public let dataParallel: Communicator
    /// The ranks that hold the other stages of this replica (same dp and tp coordinates).
    public let pipelineParallel: Communicator

    /// Splits `world` into the three groups; `world.size` must be dp · tp · pp (the caller checks and explains).
    public init(world: Communicator, dataParallelSize: Int, tensorParallelSize: Int, pipelineParallelSize: Int) {
        precondition(dataParallelSize >= 1 && tensorParallelSize >= 1 && pipelineParallelSize >= 1
                     && dataParallelSize * tensorParallelSize * pipelineParallelSize == world.size,
                     "a grid of \(dataParallelSize) × \(tensorParallelSize) × \(pipelineParallelSize) for \(world.size) processes")
        self.world = world
        self.dataParallelSize = dataParallelSize
        self.tensorParallelSize = tensorParallelSize
        self.pipelineParallelSize = pipelineParallelSize
        let coordinates = Self.coordinates(of: world.rank, dataParallelSize: dataParallelSize,
                                           tensorParallelSize: tensorParallelSize)
        (dataParallelRank, tensorParallelRank, pipelineParallelRank) = coordinates
        let (dp, tp, pp) = coordinates
        if world.size == 1 {
            tensorParallel = world; dataParallel = world; pipelineParallel = world
            return
        }
        // Colors name the group (the two other coordinates); keys order it along the axis. Every rank makes the
        // three splits in the same order, as MPI_Comm_split is collective.
        tensorParallel = world.split(color: pp * dataParallelSize + dp, key: tp)
        dataParallel = world.split(color: pp * tensorParallelSize + tp, key: dp)
        pipelineParallel = world.split(color: dp * tensorParallelSize + tp, key: pp)
    }

    /// The grid of one process (every group is `world`).
    public static func single(_ world: Communicator = SingleProcessCommunicator()) -> ProcessGrid {
        ProcessGrid(world: world, dataParallelSize: world.size, tensorParallelSize: 1, pipelineParallelSize: 1)
    }

    /// (dp, tp, pp) of world rank `rank`.
    public static func coordinates(of rank: Int, dataParallelSize: Int, tensorParallelSize: Int) -> (Int, Int, Int) {
        let replica = dataParallelSize * tensorParallelSize
        return ((rank % replica) / tensorParallelSize, rank % tensorParallelSize, rank / replica)
    }

    /// The world rank at grid coordinates (dp, tp, pp).
    public func rank(dataParallel dp: Int, tensorParallel tp: Int, pipelineParallel pp: Int) -> Int {
        pp * (dataParallelSize * tensorParallelSize) + dp * tensorParallelSize + tp
    }
}
