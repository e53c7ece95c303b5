// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Collie",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Collie", targets: ["Collie"]),
        // The server and the MPI communicator are separate products: the library builds without Hummingbird or MPI.
        .library(name: "CollieServer", targets: ["CollieServer"]),
        .library(name: "CollieMPI", targets: ["CollieMPI"]),
        .executable(name: "collie", targets: ["collie"]),
        .executable(name: "collie-fuzz", targets: ["collie-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // C shims: nothing but the system library.
        .systemLibrary(
            name: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CMPI", pkgConfig: "ompi",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),

        // The C kernels: every loop that needs a newer instruction set than baseline x86-64 (exp-heavy rows, decoding
        // matrix-vector products, element-wise loops with fused multiply-adds or float16 conversions), each compiled per
        // function for AVX-512F and AVX2+FMA beside a portable copy and chosen at run time. No compiler flags: the
        // package stays usable as a dependency and its binary runs on any x86-64.
        .target(name: "CCollieKernels"),

        // Tensor engine: storage, dtypes, views, kernels with hand-written backward, autodiff.
        .target(
            name: "CollieEngine",
            dependencies: ["CBLAS", "CCollieKernels", .product(name: "Numerics", package: "swift-numerics")]),

        // Checkpoint IO: safetensors (memory-mapped, validated), sharded folders, atomic writes.
        .target(name: "CollieIO", dependencies: ["CCollieKernels", "CollieEngine"]),

        // Modules keyed by Hugging Face names and the models built from them.
        .target(name: "CollieModels", dependencies: ["CollieEngine", "CollieIO", "CollieTokenizers"]),

        // Optimizers, schedules, the typed config (YAML/JSON), datasets, batching and the training loop.
        .target(name: "CollieTraining",
                dependencies: ["CCollieKernels", "CollieEngine", "CollieIO", "CollieModels", "CollieTokenizers",
                               "CollieMetrics", .product(name: "Yams", package: "Yams"),
                               .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["Monitors/TensorBoardEvent.proto"]),

        // Tokenizers: tokenizer.json and SentencePiece models, ids identical to the reference libraries.
        // SentencePiece/SentencePieceModel.pb.swift is generated once from the .proto (see its header).
        .target(
            name: "CollieTokenizers",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["SentencePiece/SentencePieceModel.proto"]),

        // Generation: KV-cache decoding, sampling, streaming text, chat templates (a Jinja subset).
        .target(name: "CollieGeneration", dependencies: ["CollieEngine", "CollieIO", "CollieModels", "CollieTokenizers"]),

        // Evaluators (perplexity, generation, classification) and their metrics, above training and generation:
        // the trainer runs them through its `Evaluator` protocol; they decode with `Generator`.
        .target(name: "CollieEvaluation",
                dependencies: ["CollieTraining", "CollieGeneration", "CollieModels", "CollieTokenizers", "CollieMetrics",
                               "CollieEngine"]),

        // The OpenAI-compatible HTTP server and its chat page, on Hummingbird.
        .target(name: "CollieServer",
                dependencies: ["CollieGeneration", "CollieModels", "CollieTokenizers",
                               .product(name: "Hummingbird", package: "hummingbird")]),
        // The OpenMPI communicator (`mpirun` launches); the library itself runs without MPI.
        .target(name: "CollieMPI", dependencies: ["CMPI", "CollieEngine"]),

        // Metrics equal to sacrebleu, rouge-score and scikit-learn; no dependencies.
        .target(name: "CollieMetrics"),

        // The umbrella library users import.
        .target(name: "Collie", dependencies: ["CollieEngine", "CollieIO", "CollieModels", "CollieTraining",
                                               "CollieTokenizers", "CollieMetrics", "CollieGeneration", "CollieEvaluation"]),

        // The command-line tool.
        .executableTarget(
            name: "collie",
            dependencies: ["Collie", "CBLAS", "CCollieKernels", "CollieServer", "CollieMPI", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Fuzz targets: one function per untrusted format (bytes in; errors are fine, crashes are not), and the
        // `collie-fuzz` driver that replays files in a normal build and runs libFuzzer in scripts/fuzz.sh's build.
        .target(name: "CollieFuzzing",
                dependencies: ["CollieIO", "CollieTokenizers", "CollieTraining", "CollieGeneration", "CollieServer"]),
        .executableTarget(name: "collie-fuzz", dependencies: ["CollieFuzzing"]),

        // What the test targets share: temporary folders, the repository's paths, child processes (`collie`, mpirun), kernel
        // levels.
        .target(name: "CollieTestSupport", dependencies: ["CCollieKernels"], path: "Tests/CollieTestSupport"),

        // One test target per library target: `Collie<X>Tests` tests `Collie<X>` and depends on nothing above it.
        // CollieCommandTests runs the built `collie` (every command, mpirun included) as a child process.
        .testTarget(name: "CollieEngineTests", dependencies: ["CollieEngine", "CollieTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "CollieIOTests", dependencies: ["CollieIO", "CollieTestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CollieTokenizersTests", dependencies: ["CollieTokenizers", "CollieTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "CollieMetricsTests", dependencies: ["CollieMetrics", "CollieTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "CollieModelsTests",
                    dependencies: ["CollieModels", "CollieEngine", "CollieIO", "CollieTokenizers", "CollieTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "CollieTrainingTests",
                    dependencies: ["CollieTraining", "CollieModels", "CollieEngine", "CollieIO", "CollieTokenizers",
                                   "CollieTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "CollieGenerationTests",
                    dependencies: ["CollieGeneration", "CollieModels", "CollieTokenizers", "CollieEngine", "CollieTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "CollieEvaluationTests",
                    dependencies: ["CollieEvaluation", "CollieTraining", "CollieModels", "CollieTokenizers", "CollieMetrics",
                                   "CollieEngine", "CollieGeneration", "CollieTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "CollieServerTests",
                    dependencies: ["CollieServer", "CollieGeneration", "CollieModels", "CollieTokenizers", "CollieTestSupport"],
                    exclude: ["Fixtures"]),
        // The MPI communicator's collectives on 2 and 4 ranks, and data parallelism / ZeRO (CollieTraining) over it.
        .testTarget(name: "CollieMPITests",
                    dependencies: ["CollieMPI", "CollieTraining", "CollieModels", "CollieEngine", "CollieGeneration",
                                   "CollieTestSupport"]),
        .testTarget(name: "CollieFuzzingTests", dependencies: ["CollieFuzzing", "CollieTestSupport"]),
        .testTarget(name: "CollieCommandTests",
                    dependencies: ["CollieTraining", "CollieModels", "CollieMetrics", "CollieIO", "CollieEngine",
                                   "CollieTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
