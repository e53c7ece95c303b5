import ArgumentParser

/// `collie bench`: measurements of Collie's speed on this machine.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Collie's speed",
        subcommands: [Ops.self, Train.self, Memory.self, BenchParallel.self, BenchTokenizer.self, BenchGenerate.self])
}
