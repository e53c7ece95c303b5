import CollieModels
import CollieTestSupport
import CollieTraining
import Foundation
import XCTest

final class ConfigTests: XCTestCase {
    /// A config with every section set, as a user would write it.
    static let fullYAML = """
        model: tiny
        tokenizer: tok
        train_data: train.jsonl
        eval_data: eval.json
        record_format: input_output
        max_length: 256
        shuffle: false
        padding_side: left
        padding_free: true
        last_batch: fill
        seed: 7
        dp_size: 1
        train_epochs: 3
        train_micro_batch_size: 4
        gradient_accumulation_steps: 2
        eval_batch_size: 8
        eval_per_n_steps: 50
        eval_per_n_epochs: 1
        checkpointing: false
        use_flash: false
        dropout: 0.1
        init_method: {type: normal, mean: 0, std: 0.01}
        optimizer:
          name: adamw
          lr: 3.0e-4
          betas: [0.9, 0.95]
          eps: 1.0e-6
          weight_decay: 0.1
        lr_scheduler: {type: cosine, warmup_ratio: 0.03}
        max_grad_norm: 1.0
        dtype: bfloat16
        output_dir: out
        monitors: [loss, lr, tokens_per_second, step_time, memory, eval]
        monitor_outputs: [csv, tensorboard]
        callbacks:
          checkpoint: {every_n_batches: 100, keep_last: 2, top_k: 3, monitor: eval_loss, mode: min}
          load_best_model: {monitor: eval_loss}
          early_stop: {monitor: accuracy, mode: max, patience: 2}
        """

    private func issue(_ yaml: String, overrides: [String] = [], file: StaticString = #filePath, line: UInt = #line)
        -> ConfigError.Issue? {
        do {
            _ = try CollieConfig(text: yaml, source: "train.yaml", overrides: overrides)
            XCTFail("expected a ConfigError", file: file, line: line)
        } catch let error as ConfigError {
            return error.issues.first
        } catch {
            XCTFail("expected a ConfigError, got \(error)", file: file, line: line)
        }
        return nil
    }

    // MARK: - Reading

    func testEveryFieldReadsFromYAML() throws {
        let config = try CollieConfig(text: Self.fullYAML)
        XCTAssertEqual(config.model, .preset(.tiny))
        XCTAssertEqual(config.tokenizer, "tok")
        XCTAssertEqual(config.recordFormat, .inputOutput)
        XCTAssertEqual(config.paddingSide, .left)
        XCTAssertTrue(config.paddingFree)
        XCTAssertEqual(config.lastBatch, .fill)
        XCTAssertEqual(config.seed, 7)
        XCTAssertEqual(config.trainMicroBatchSize, 4)
        XCTAssertEqual(config.globalBatchSize, 8)
        XCTAssertEqual(config.dropout, 0.1)
        XCTAssertEqual(config.initMethod, .init(kind: .normal, mean: 0, std: 0.01))
        XCTAssertEqual(config.optimizer, .init(name: .adamW, learningRate: 3e-4, betas: [0.9, 0.95], epsilon: 1e-6,
                                               weightDecay: 0.1))
        XCTAssertEqual(config.lrScheduler, .init(kind: .cosine, warmupRatio: 0.03))
        XCTAssertEqual(config.lrScheduler.warmupSteps(totalSteps: 1000), 30)
        XCTAssertEqual(config.dtype, .bfloat16)
        XCTAssertEqual(config.monitors, CollieConfig.Monitor.allCases)
        XCTAssertEqual(config.monitorOutputs, [.csv, .tensorboard])
        XCTAssertEqual(config.callbacks.checkpoint, .init(everyNBatches: 100, keepLast: 2, topK: 3, monitor: "eval_loss"))
        XCTAssertEqual(config.callbacks.loadBestModel, .init(monitor: "eval_loss", mode: .min))
        XCTAssertEqual(config.callbacks.earlyStop, .init(monitor: "accuracy", mode: .max, patience: 2))
    }

    func testAbsentKeysTakeCoLLiEDefaults() throws {
        let config = try CollieConfig(text: "model: /models/llama")
        XCTAssertEqual(config.model, .folder("/models/llama"))
        XCTAssertEqual(config.tokenizerPath, "/models/llama")
        XCTAssertEqual(config.seed, 42)
        XCTAssertEqual([config.dataParallelSize, config.tensorParallelSize, config.pipelineParallelSize], [1, 1, 1])
        XCTAssertEqual(config.trainEpochs, 100)
        XCTAssertEqual([config.trainMicroBatchSize, config.gradientAccumulationSteps, config.evalBatchSize], [1, 1, 1])
        XCTAssertEqual([config.evalPerNSteps, config.evalPerNEpochs], [0, 0])
        XCTAssertTrue(config.checkpointing)
        XCTAssertTrue(config.useFlash)
        XCTAssertFalse(config.paddingFree)
        XCTAssertEqual(config.dropout, 0)
        XCTAssertEqual(config.initMethod, .init(kind: .normal, mean: 0, std: 0.02))
        XCTAssertEqual(config.optimizer.name, .adamW)
        XCTAssertEqual(config.optimizer.resolvedWeightDecay, 0.01)
        XCTAssertEqual(config.lrScheduler.kind, .constant)
        XCTAssertEqual(config, CollieConfig(model: .folder("/models/llama")))
    }

    func testConfigRoundTripsThroughYAML() throws {
        let config = try CollieConfig(text: Self.fullYAML)
        let yaml = try config.yamlString()
        XCTAssertEqual(try CollieConfig(text: yaml), config)
        XCTAssertTrue(yaml.contains("\n  lr: 0.0003\n"), "numbers as people write them:\n\(yaml)")
        XCTAssertTrue(yaml.contains("\ndropout: 0.1\n"), yaml)
        let defaults = CollieConfig(model: .folder("/models/llama"))
        XCTAssertEqual(try CollieConfig(text: try defaults.yamlString()), defaults)
    }

    func testConfigRoundTripsThroughJSON() throws {
        let config = try CollieConfig(text: Self.fullYAML)
        let json = String(decoding: try config.jsonData(), as: UTF8.self)
        XCTAssertTrue(json.contains("\"train_micro_batch_size\" : 4"), json)
        XCTAssertEqual(try CollieConfig(text: json), config)
        XCTAssertEqual(try JSONDecoder().decode(CollieConfig.self, from: try config.jsonData()), config)
    }

    func testJSONConfigFileLoads() throws {
        let folder = try temporaryFolder(for: self)
        let url = folder.appendingPathComponent("config.json")
        try Data(#"{"model": "tiny", "tokenizer": "tok", "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}}"#.utf8)
            .write(to: url)
        let config = try CollieConfig.load(from: url)
        XCTAssertEqual(config.optimizer, .init(name: .sgd, learningRate: 0.1, momentum: 0.9))
        XCTAssertEqual(config.tokenizer, folder.appendingPathComponent("tok").path, "relative to the config file")
    }

    func testRelativePathsResolveAgainstTheConfigFileButPresetsStayNames() throws {
        let folder = try temporaryFolder(for: self)
        let url = folder.appendingPathComponent("train.yaml")
        try Data("model: tiny\ntokenizer: ../tok\ntrain_data: data/a.jsonl\noutput_dir: /abs/out\n".utf8).write(to: url)
        let config = try CollieConfig.load(from: url, overrides: ["eval_data=eval.jsonl"])
        XCTAssertEqual(config.model, .preset(.tiny))
        XCTAssertEqual(config.tokenizer, folder.deletingLastPathComponent().appendingPathComponent("tok").path)
        XCTAssertEqual(config.trainData, folder.appendingPathComponent("data/a.jsonl").path)
        XCTAssertEqual(config.outputDir, "/abs/out")
        XCTAssertEqual(config.evalData, "eval.jsonl", "--set paths stay relative to the working directory")
    }

    // MARK: - Unknown keys and bad values name the key

    func testUnknownTopLevelKeyNamesKeyAndLineWithSuggestion() throws {
        let issue = try XCTUnwrap(issue("model: tiny\ntokenizer: t\ntrain_epoch: 3\n"))
        XCTAssertEqual(issue.keyPath, "train_epoch")
        XCTAssertEqual(issue.line, 3)
        XCTAssertEqual(issue.description, "train.yaml:3: train_epoch: unknown key (did you mean train_epochs?)")
    }

    func testUnknownNestedKeyNamesItsPath() throws {
        let issue = try XCTUnwrap(issue("model: tiny\ntokenizer: t\noptimizer:\n  name: adamw\n  lerning_rate: 1e-4\n"))
        XCTAssertEqual(issue.description, "train.yaml:5: optimizer.lerning_rate: unknown key (did you mean lr?)")
    }

    func testUnknownKeyDeepInCallbacksNamesItsPath() throws {
        let yaml = "model: tiny\ntokenizer: t\ncallbacks:\n  checkpoint:\n    every_n_epoch: 1\n"
        let issue = try XCTUnwrap(issue(yaml))
        XCTAssertEqual(issue.keyPath, "callbacks.checkpoint.every_n_epoch")
        XCTAssertEqual(issue.line, 5)
        XCTAssertTrue(issue.message.contains("did you mean every_n_epochs?"), issue.message)
    }

    func testEveryUnknownKeyIsReportedAtOnce() throws {
        do {
            _ = try CollieConfig(text: "model: tiny\ntokenizer: t\nfoo: 1\noptimizer: {bar: 2}\n")
            XCTFail("expected an error")
        } catch let error as ConfigError {
            XCTAssertEqual(error.keyPaths, ["foo", "optimizer.bar"])
        }
    }

    func testUnknownEnumValueListsTheAllowedOnes() throws {
        let issue = try XCTUnwrap(issue("model: tiny\ntokenizer: t\noptimizer:\n  name: adam\n"))
        XCTAssertEqual(issue.keyPath, "optimizer.name")
        XCTAssertEqual(issue.line, 4)
        XCTAssertTrue(issue.message.hasPrefix("unknown value \"adam\" (did you mean adamw?); expected one of sgd, adamw"),
                      issue.message)
    }

    func testMixedPrecisionIsNoOrBF16() throws {
        XCTAssertEqual(try CollieConfig(text: "model: tiny\ntokenizer: t\n").mixedPrecision, .no)
        XCTAssertEqual(try CollieConfig(text: "model: tiny\ntokenizer: t\nmixed_precision: bf16\n").mixedPrecision, .bf16)
        XCTAssertEqual(try CollieConfig(text: "model: tiny\ntokenizer: t\nmixed_precision: no\n").mixedPrecision, .no)
        XCTAssertEqual(CollieConfig.MixedPrecisionMode.bf16.gemmPrecision, .bfloat16)
        let issue = try XCTUnwrap(issue("model: tiny\ntokenizer: t\nmixed_precision: fp16\n"))
        XCTAssertEqual(issue.keyPath, "mixed_precision")
        XCTAssertTrue(issue.message.contains("expected one of no, bf16"), issue.message)
    }

    func testBadValueInAListNamesItsIndex() throws {
        let issue = try XCTUnwrap(issue("model: tiny\ntokenizer: t\nmonitors:\n  - loss\n  - los\n"))
        XCTAssertEqual(issue.keyPath, "monitors[1]")
        XCTAssertEqual(issue.line, 5)
    }

    func testWrongTypeNamesKeyAndExpectedType() throws {
        let cases: [(yaml: String, keyPath: String, expected: String)] = [
            ("train_micro_batch_size: four", "train_micro_batch_size", "expected an integer, got \"four\""),
            ("train_epochs: 1.5", "train_epochs", "expected an integer, got \"1.5\""),
            ("optimizer: {lr: fast}", "optimizer.lr", "expected a number, got \"fast\""),
            ("shuffle: maybe", "shuffle", "expected true or false, got \"maybe\""),
            ("optimizer: adamw", "optimizer", "expected a section (key: value lines), got \"adamw\""),
            ("monitors: loss", "monitors", "expected a list, got \"loss\""),
            ("optimizer: {betas: 0.9}", "optimizer.betas", "expected a list, got \"0.9\""),
            ("seed: \"7\"", "seed", "expected an integer, got \"7\""),
        ]
        for (yaml, keyPath, expected) in cases {
            let issue = try XCTUnwrap(issue("model: tiny\ntokenizer: t\n" + yaml))
            XCTAssertEqual(issue.keyPath, keyPath, yaml)
            XCTAssertEqual(issue.message, expected, yaml)
            XCTAssertEqual(issue.line, 3, yaml)
        }
    }

    func testMissingModelIsAnError() throws {
        let issue = try XCTUnwrap(issue("seed: 1\n"))
        XCTAssertEqual(issue.message, "missing required key model")
    }

    func testDuplicateKeyIsAnError() throws {
        let issue = try XCTUnwrap(issue("model: tiny\nseed: 1\nseed: 2\n"))
        XCTAssertEqual(issue.keyPath, "seed")
        XCTAssertEqual(issue.line, 3)
        XCTAssertTrue(issue.message.contains("duplicate key (first on line 2)"), issue.message)
    }

    func testMalformedYAMLGivesTheLine() throws {
        let issue = try XCTUnwrap(issue("model: tiny\noptimizer:\n  lr: [1, 2\nseed: 3\n"))
        XCTAssertNotNil(issue.line)
        XCTAssertTrue(issue.message.hasPrefix("not valid YAML or JSON"), issue.message)
    }

    // MARK: - Overrides

    /// The 7B example's config reads as written: the LLaMA-2-7B-shaped preset in bf16 with AdaLomo, checkpointing and
    /// bf16 products; the preset has LLaMA-2-7B's shape (6.74B parameters with a 32,000-id vocabulary).
    func testSevenBExampleConfigReadsAsWritten() throws {
        let config = try CollieConfig.load(from: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().appendingPathComponent("../../../examples/lomo_7b/config.yaml").standardizedFileURL)
        XCTAssertEqual(config.model, .preset(.sevenB))
        XCTAssertEqual(config.dtype, .bfloat16)
        XCTAssertEqual(config.mixedPrecision, .bf16)
        XCTAssertEqual(config.optimizer.name, .adaLomo)
        XCTAssertTrue(config.checkpointing)
        XCTAssertEqual(config.maxLength, 512)
        let c = ModelPreset.sevenB.configuration(vocabularySize: 32000)
        XCTAssertEqual([c.hiddenSize, c.hiddenLayers, c.attentionHeads, c.keyValueHeads, c.intermediateSize], [4096, 32, 32, 32, 11008])
        let perLayer = 4 * c.hiddenSize * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize + 2 * c.hiddenSize
        XCTAssertEqual(2 * c.vocabularySize * c.hiddenSize + c.hiddenLayers * perLayer + c.hiddenSize, 6_738_415_616)
    }

    func testSetOverridesValuesParsedAsYAMLScalars() throws {
        let config = try CollieConfig(text: Self.fullYAML, overrides: [
            "optimizer.lr=1e-4", "train_epochs=5", "shuffle=true", "optimizer.betas=[0.8, 0.9]", "model=small",
            "callbacks.early_stop.patience=4", "lr_scheduler.type=linear", "max_grad_norm=null",
            "callbacks.load_best_model=null", "callbacks.checkpoint.top_k=null",
        ])
        XCTAssertEqual(config.optimizer.learningRate, 1e-4)
        XCTAssertEqual(config.trainEpochs, 5)
        XCTAssertTrue(config.shuffle)
        XCTAssertEqual(config.optimizer.betas, [0.8, 0.9])
        XCTAssertEqual(config.model, .preset(.small))
        XCTAssertEqual(config.callbacks.earlyStop?.patience, 4)
        XCTAssertEqual(config.lrScheduler.kind, .linear)
        XCTAssertNil(config.maxGradNorm)
        XCTAssertNil(config.callbacks.loadBestModel)
        XCTAssertNil(config.callbacks.checkpoint?.topK)
    }

    func testSetCreatesMissingSections() throws {
        let config = try CollieConfig(text: "model: tiny\ntokenizer: t", overrides: ["optimizer.name=sgd", "optimizer.lr=0.5"])
        XCTAssertEqual(config.optimizer, .init(name: .sgd, learningRate: 0.5))
    }

    func testSetWithUnknownKeyIsAnErrorNamingTheOverride() throws {
        let issue = try XCTUnwrap(issue("model: tiny\ntokenizer: t", overrides: ["optimizer.lerning_rate=1e-4"]))
        XCTAssertEqual(issue.keyPath, "optimizer.lerning_rate")
        XCTAssertEqual(issue.source, "--set optimizer.lerning_rate=1e-4")
        XCTAssertNil(issue.line)
        XCTAssertEqual(issue.description,
                       "--set optimizer.lerning_rate=1e-4: optimizer.lerning_rate: unknown key (did you mean lr?)")
    }

    func testSetWithBadValueOrShapeIsAnError() throws {
        XCTAssertEqual(issue("model: tiny\ntokenizer: t", overrides: ["seed=abc"])?.description,
                       "--set seed=abc: seed: expected an integer, got \"abc\"")
        XCTAssertEqual(issue("model: tiny\nseed: 1\ntokenizer: t", overrides: ["seed.x=1"])?.message,
                       "seed is \"1\", not a section")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t", overrides: ["seed.x=1"])?.message,
                       "expected an integer, got a section")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t", overrides: ["seed"])?.message, "expected key=value")
    }

    // MARK: - validate()

    func testValidateChecksRangesAndNamesEachKey() throws {
        let yaml = """
            model: tiny
            tokenizer: t
            train_micro_batch_size: 0
            gradient_accumulation_steps: 0
            dropout: 1.5
            lr_scheduler: {warmup_ratio: 1.5}
            optimizer: {betas: [0.9, 1.0], lr: -1}
            """
        do {
            _ = try CollieConfig(text: yaml, source: "train.yaml")
            XCTFail("expected an error")
        } catch let error as ConfigError {
            XCTAssertEqual(Set(error.keyPaths), ["train_micro_batch_size", "gradient_accumulation_steps", "dropout",
                                                 "lr_scheduler.warmup_ratio", "optimizer.betas[1]", "optimizer.lr"])
            let ratio = try XCTUnwrap(error.issues.first { $0.keyPath == "lr_scheduler.warmup_ratio" })
            XCTAssertEqual(ratio.description, "train.yaml:6: lr_scheduler.warmup_ratio: must be in [0, 1], got 1.5")
            XCTAssertEqual(error.issues.first { $0.keyPath == "optimizer.betas[1]" }?.line, 7)
        }
    }

    /// `init_method.type` names `torch.nn.init`'s distributions; `std` (and `mean`) belong to the normal one.
    func testInitMethodTakesEachDistributionAndRefusesAStdItWouldIgnore() throws {
        for kind in CollieConfig.InitMethod.Kind.allCases {
            let config = try CollieConfig(text: "model: tiny\ntokenizer: t\ninit_method: {type: \(kind.rawValue)}",
                                          source: "train.yaml")
            XCTAssertEqual(config.initMethod, .init(kind: kind, mean: 0, std: 0.02))
        }
        let std = issue("model: tiny\ntokenizer: t\ninit_method: {type: kaiming_normal, std: 0.1}")
        XCTAssertEqual(std?.keyPath, "init_method.std")
        XCTAssertEqual(std?.message, "applies to type normal; kaiming_normal takes its scale from each weight's fan-in "
                       + "and fan-out")
        let unknown = issue("model: tiny\ntokenizer: t\ninit_method: {type: orthogonal}")
        XCTAssertEqual(unknown?.keyPath, "init_method.type")
        XCTAssertTrue(unknown?.message.contains("xavier_uniform") == true, unknown?.message ?? "")
    }

    func testPipelineParallelismIsAcceptedExceptWithWhatItDoesNotYetCover() throws {
        let config = try CollieConfig(text: "model: tiny\ntokenizer: t\npp_size: 2\npp_partition_method: type:DecoderLayer",
                                      source: "train.yaml")
        XCTAssertEqual(config.pipelineParallelSize, 2)
        XCTAssertEqual(config.pipelinePartitionMethod, .type("DecoderLayer"))
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\npp_size: 2\ntp_size: 2\noptimizer: {name: adalomo, lr: 0.1}\n"
                                           + "gradient_accumulation_steps: 1\ncallbacks: {checkpoint: {every_n_batches: 3}}",
                                           source: "train.yaml"), "tensor × pipeline parallelism, AdaLomo, checkpoints")
        XCTAssertEqual(try CollieConfig(text: "model: tiny\ntokenizer: t", source: "train.yaml").pipelinePartitionMethod,
                       .parameters)
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\ndp_size: 2\npp_size: 2\noptimizer: {name: sophiag, lr: 0.1}\n"
                                           + "ds_config: {zero_optimization: {stage: 2}}", source: "train.yaml"),
                         "SophiaG with ZeRO over the dp group")
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\npp_size: 2\npadding_free: true", source: "train.yaml"),
                         "padding-free batches through pipeline stages")
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\ndp_size: 2\npp_size: 2\noptimizer: {name: adalomo, lr: 0.1}\n"
                                           + "gradient_accumulation_steps: 1\nds_config: {zero_optimization: {stage: 3}}",
                                           source: "train.yaml"), "ZeRO-3 over the dp group of each stage")
        let cases: [(String, String, String)] = [
            ("padding_free: true\npeft_config: {peft_type: PROMPT_TUNING, num_virtual_tokens: 4}", "padding_free",
             "prompt tuning puts its virtual tokens in front of every row"),
        ]
        for (text, key, message) in cases {
            let issue = try XCTUnwrap(issue("model: tiny\ntokenizer: t\n" + text), text)
            XCTAssertEqual(issue.keyPath, key, text)
            XCTAssertTrue(issue.message.contains(message), issue.message)
        }
    }

    func testTensorParallelismIsAcceptedExceptWithWhatItDoesNotYetCover() throws {
        let config = try CollieConfig(text: "model: tiny\ntokenizer: t\ntp_size: 2\ndp_size: 2", source: "train.yaml")
        XCTAssertEqual(config.tensorParallelSize, 2)
        XCTAssertEqual(config.processCount, 4)
        XCTAssertEqual(try XCTUnwrap(issue("model: tiny\ntokenizer: t\ntp_size: 0")).keyPath, "tp_size")
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\ntp_size: 2\ndp_size: 2\nds_config: {zero_optimization: {stage: 3}}",
                                           source: "train.yaml"), "ZeRO-3 over the dp group of a tp run")
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\ntp_size: 2\npp_size: 2\nds_config: {zero_optimization: {stage: 1}}\n"
                                           + "callbacks: {checkpoint: {every_n_batches: 3}}", source: "train.yaml"))
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\ntp_size: 2\neval_split: 0.1\npeft_config: {peft_type: LORA, r: 4}\n"
                                           + "callbacks: {load_best_model: {monitor: eval_loss}, checkpoint: {every_n_batches: 3}}",
                                           source: "train.yaml"))
    }

    func testDataParallelismAndZeroStagesAreAccepted() throws {
        let config = try CollieConfig(text: "model: tiny\ntokenizer: t\ndp_size: 4\nds_config: {zero_optimization: {stage: 2}}",
                                      source: "train.yaml")
        XCTAssertEqual(config.dataParallelSize, 4)
        XCTAssertEqual(config.zeroStage, 2)
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\ndp_size: 2", source: "train.yaml"))
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\nds_config: {zero_optimization: {stage: 3}}",
                                          source: "train.yaml"))
        let lomo = try XCTUnwrap(issue("model: tiny\ntokenizer: t\noptimizer: {name: lomo}\nds_config: {zero_optimization: {stage: 2}}"))
        XCTAssertEqual(lomo.keyPath, "ds_config.zero_optimization.stage")
        XCTAssertTrue(lomo.message.contains("use stage 0 (data parallelism) or 3"), lomo.message)
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\noptimizer: {name: adalomo}\nds_config: {zero_optimization: {stage: 3}}",
                                          source: "train.yaml"))
        let unknown = try XCTUnwrap(issue("model: tiny\ntokenizer: t\nds_config: {zero_optimization: {stage: 7}}"))
        XCTAssertEqual(unknown.message, "must be 0, 1, 2 or 3, got 7")
        XCTAssertEqual(try XCTUnwrap(issue("model: tiny\ntokenizer: t\ndp_size: 0")).keyPath, "dp_size")
    }

    func testEveryOptimizerTakesItsOwnHyperParameters() throws {
        for yaml in ["{name: lomo, lr: 0.01, weight_decay: 0.1, clip_grad_value: 1}",
                     "{name: adalomo, clip_threshold: 1, decay_rate: -0.8, clip_grad_value: 0.5}",
                     "{name: lion, betas: [0.95, 0.98], weight_decay: 0.1}",
                     "{name: adan, betas: [0.98, 0.92, 0.99], eps: 1e-8, no_prox: true}",
                     "{name: sophiag, betas: [0.965, 0.99], rho: 0.05, hessian_update_interval: 5}"] {
            XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\noptimizer: \(yaml)", source: "train.yaml"), yaml)
        }
        let wrongCount = try XCTUnwrap(issue("model: tiny\ntokenizer: t\noptimizer: {name: adan, betas: [0.9, 0.9]}"))
        XCTAssertEqual(wrongCount.keyPath, "optimizer.betas")
        XCTAssertEqual(wrongCount.message, "adan takes 3 values, got 2")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\noptimizer: {name: lomo, betas: [0.9, 0.9]}")?.keyPath,
                       "optimizer.betas")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\noptimizer: {name: adamw, rho: 0.1}")?.keyPath, "optimizer.rho")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\noptimizer: {name: adalomo, decay_rate: 0.8}")?.keyPath,
                       "optimizer.decay_rate")
    }

    func testInBackwardOptimizersRefuseGradientAccumulation() throws {
        for name in ["lomo", "adalomo"] {
            let found = try XCTUnwrap(issue("model: tiny\ntokenizer: t\noptimizer: {name: \(name)}\ngradient_accumulation_steps: 4"))
            XCTAssertEqual(found.keyPath, "gradient_accumulation_steps")
            XCTAssertTrue(found.message.contains("updates each parameter inside backward"), found.message)
        }
        XCTAssertNoThrow(try CollieConfig(text: "model: tiny\ntokenizer: t\noptimizer: {name: adamw}\ngradient_accumulation_steps: 4",
                                          source: "train.yaml"))
    }

    func testHyperParameterOfAnotherOptimizerIsAnError() throws {
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\noptimizer: {name: sgd, betas: [0.9, 0.99]}")?.keyPath,
                       "optimizer.betas")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\noptimizer: {name: adamw, momentum: 0.9}")?.keyPath,
                       "optimizer.momentum")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\noptimizer: {name: sgd, nesterov: true}")?.keyPath,
                       "optimizer.nesterov")
    }

    func testExclusiveAndRequiredKeys() throws {
        XCTAssertEqual(issue("model: tiny")?.keyPath, "tokenizer")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\nlr_scheduler: {warmup_steps: 10, warmup_ratio: 0.1}")?.keyPath,
                       "lr_scheduler.warmup_ratio")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\ncallbacks: {checkpoint: {keep_last: 2}}")?.keyPath,
                       "callbacks.checkpoint")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\ncallbacks: {early_stop: {monitor: loss}}")?.keyPath, "callbacks")
        XCTAssertEqual(issue("model: tiny\ntokenizer: t\nrecord_format: generation")?.keyPath, "record_format")
    }

    // MARK: - The bundled example

    func testTinyAlpacaExampleConfigLoadsAndValidates() throws {
        let url = TestPaths.repository.appendingPathComponent("examples/alpaca/tiny.yaml")
        let config = try CollieConfig.load(from: url)
        XCTAssertEqual(config.model, .preset(.tiny))
        XCTAssertEqual(config.recordFormat, .alpaca)
        for path in [config.tokenizer, config.trainData] {
            let path = try XCTUnwrap(path)
            XCTAssertTrue(FileManager.default.fileExists(atPath: path), path)
        }
        XCTAssertNoThrow(try config.validate())
        let model = ModelPreset.tiny.configuration(for: Fixtures.tokenizer, maxPositionEmbeddings: config.maxLength)
        XCTAssertEqual([model.hiddenSize, model.hiddenLayers, model.attentionHeads, model.intermediateSize],
                       [256, 4, 4, 688])
        XCTAssertEqual(model.vocabularySize, 32000)
    }
}
