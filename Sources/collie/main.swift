import ArgumentParser
import Collie

/// The `collie` command-line tool.
struct CollieCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collie",
        abstract: "Train, fine-tune and run large language models on the CPU you have.",
        version: Collie.version,
        subcommands: [Version.self, Train.self, Demo.self, Score.self, Convert.self, Generate.self, Serve.self, Bench.self,
                      Tokenize.self, Evaluate.self, Metrics.self, Vocab.self])
}

/// `collie version`
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print Collie's version.")
    func run() { print("collie \(Collie.version)") }
}

BLASEnvironment.restartIfNeeded()
CollieCommand.main()
