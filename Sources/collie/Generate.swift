import ArgumentParser
import Collie
import CollieServer
import Foundation

/// Sampling options shared by `collie generate` and `collie bench generate`.
struct SamplingOptions: ParsableArguments {
    @Option(help: "How many tokens to add at most.") var maxNewTokens = 64
    @Option(help: "Sampling temperature; 0 is greedy decoding.") var temperature = 0.0
    @Option(help: "Keep only the k most likely tokens (0: all).") var topK: Int?
    @Option(help: "Keep the most likely tokens up to this cumulative probability (1: all).") var topP: Double?
    @Option(help: "Penalize tokens already in the sequence (> 1 discourages repeats; 1: off).") var repetitionPenalty: Double?
    @Option(name: .customLong("stop-ids"), help: "Comma-separated extra stop token ids (the model's end-of-sequence ids always stop).")
    var stopIDs: String?
    @Option(parsing: .singleValue, help: "A text that ends the continuation (repeatable).") var stop: [String] = []
    @Option(help: "Seed of the sampler.") var seed: UInt64 = 0

    func parameters() throws -> GenerationParameters {
        let parameters = GenerationParameters(
            maxNewTokens: maxNewTokens, temperature: temperature, topK: topK, topP: topP,
            repetitionPenalty: repetitionPenalty, stopTokenIDs: Set(try TokenIDList.parse(stopIDs ?? "", option: "--stop-ids")),
            stopStrings: stop, seed: seed)
        do { try parameters.validate() } catch { throw ValidationError("\(error)") }
        return parameters
    }
}

/// `collie generate`: continue a prompt with a KV cache, streaming the text as it is produced.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a prompt (text, chat message or token ids) with greedy decoding or sampling.",
        discussion: """
        With --prompt the text is tokenized with the folder's tokenizer and the continuation is printed as it is \
        generated; --chat wraps the prompt as a user message in the tokenizer's chat template. With --prompt-ids \
        (comma-separated; repeat for a left-padded batch) no tokenizer is needed. --json prints \
        {"prompt_ids", "ids", "text", "finish_reason"} per prompt instead (a list for a batch; "text" is null when \
        --prompt-ids is given and the folder or GGUF file has no tokenizer).
        """)

    @Option(help: "A Hugging Face model folder or a .gguf file.") var model: String
    @Option(help: "The prompt text.") var prompt: String?
    @Option(name: .customLong("prompt-ids"), parsing: .singleValue,
            help: "Comma-separated prompt token ids, e.g. 1,450,4996 (repeatable: one batch).")
    var promptIDs: [String] = []
    @Flag(help: "Render --prompt as a user message with the tokenizer's chat template.") var chat = false
    @Option(help: "A Jinja chat template file to use instead of tokenizer_config.json's.") var chatTemplate: String?
    @Option(help: "A PEFT adapter folder to apply (LoRA or prompt tuning).") var adapter: String?
    @Flag(help: "Print JSON (token ids, finish reason, text) instead of streaming text.") var json = false
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var quantization: QuantizationOptions
    @Option(help: "Decoding arithmetic on quantized blocks: automatic (the fastest measured: with AVX512_BF16 bfloat16 for the 32-value formats, else int8 for one sequence and float for more), float (the dequantized weights' results), int8 (llama.cpp's) or bfloat16 (activations rounded to bfloat16).")
    var activations: QuantizedActivations = .automatic

    func validate() throws {
        guard (prompt == nil) != promptIDs.isEmpty else { throw ValidationError("give either --prompt or --prompt-ids") }
        if chat && prompt == nil { throw ValidationError("--chat needs --prompt") }
    }

    func run() throws {
        try Tensor.withQuantizedActivations(activations) { try generate() }
    }

    private func generate() throws {
        let folder = URL(fileURLWithPath: model)
        let parameters = try sampling.parameters()
        let quantization = try self.quantization.weightQuantization(model: model)
        if let prompt {
            let generator = try TextGenerator.load(from: folder, chatTemplate: chatTemplate.map(URL.init(fileURLWithPath:)),
                                                   adapter: adapter.map(URL.init(fileURLWithPath:)), quantization: quantization)
            let ids = chat ? try generator.encode(chat: [ChatMessage(role: "user", content: prompt)])
                           : generator.encode(prompt: prompt)
            let results = try generator.complete([ids], parameters: parameters, onText: { _, delta in
                if !json { ConsoleOutput.standardOutput(delta) }
            })
            if json {
                print(try Self.json(prompts: [ids], ids: results.map(\.tokens), texts: results.map(\.text),
                                    finishReasons: results.map(\.finishReason)))
            } else {
                print("")
            }
            return
        }
        let lm = try PretrainedModel.model(.at(folder), adapter: adapter.map { .folder(URL(fileURLWithPath: $0)) },
                                           quantization: quantization)
        let prompts = try promptIDs.map { try TokenIDList.parse($0, option: "--prompt-ids") }
        var withStops = parameters
        withStops.stopTokenIDs.formUnion(lm.configuration.eosTokenIDs)
        let results: [GeneratedSequence]
        do {
            results = try Generator(model: lm).generate(prompts: prompts, parameters: withStops)
        } catch let error as GenerationError {
            throw ValidationError(error.description)
        }
        if json || prompts.count > 1 {
            // The text when the folder (or the GGUF file's metadata) has a tokenizer; ids alone need none.
            let hasTokenizer = GGUFModelFile.isGGUF(folder)
                ? (try GGUFFile(url: folder))["tokenizer.ggml.model"] != nil
                : ["tokenizer.json", "vocab.json", "tokenizer.model", "ice_text.model"].contains {
                    FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path)
                }
            let tokenizer = hasTokenizer ? try PretrainedModel.tokenizer(at: folder).tokenizer : nil
            let texts = try results.map { result -> String? in
                try tokenizer.map { try $0.decode(result.tokens, skipSpecialTokens: true) }
            }
            print(try Self.json(prompts: prompts, ids: results.map(\.tokens), texts: texts,
                                finishReasons: results.map(\.finishReason)))
        } else {
            print("[" + results[0].tokens.map(String.init).joined(separator: ", ") + "]")
        }
    }

    /// `{"prompt_ids", "ids", "text", "finish_reason"}` per prompt (an object for one prompt, a list for a batch);
    /// a nil text is JSON null.
    static func json(prompts: [[Int]], ids: [[Int]], texts: [String?], finishReasons: [FinishReason]) throws -> String {
        let records: [[String: Any]] = prompts.indices.map { i in
            ["prompt_ids": prompts[i], "ids": ids[i], "text": texts[i] ?? NSNull(), "finish_reason": finishReasons[i].rawValue]
        }
        let data = try JSONSerialization.data(withJSONObject: records.count == 1 ? records[0] : records,
                                              options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}

/// Comma-separated token ids.
enum TokenIDList {
    static func parse(_ text: String, option: String) throws -> [Int] {
        try text.split(separator: ",").map { part in
            guard let id = Int(part.trimmingCharacters(in: .whitespaces)), id >= 0 else {
                throw ValidationError("\(option): '\(part)' is not a token id")
            }
            return id
        }
    }
}

/// `collie serve`: the OpenAI-compatible server and chat page.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over an OpenAI-compatible HTTP API, with a chat page at /.",
        discussion: """
        Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (both with "stream": true as \
        server-sent events), GET /health, GET / (chat page). Requests run one at a time in arrival order; \
        past --max-queue waiting ones the server answers 503 with Retry-After. A request whose client \
        disconnects is cancelled. With an API key (--api-key or COLLIE_API_KEY) the /v1/ routes need \
        "Authorization: Bearer KEY". Prints "listening on http://HOST:PORT" once it accepts connections; \
        stops on SIGINT/SIGTERM.
        """)

    @Option(help: "A Hugging Face model folder (with its tokenizer) or a .gguf file.") var model: String
    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(help: "The port (0 picks a free one).") var port = 8000
    @Option(help: "The model id clients use (default: the folder's name).") var modelName: String?
    @Option(help: "A Jinja chat template file to use instead of tokenizer_config.json's.") var chatTemplate: String?
    @Option(help: "A PEFT adapter folder to apply (LoRA or prompt tuning).") var adapter: String?
    @Option(help: "The largest request body in bytes (larger: 413).") var maxBody = ServerLimits().maxBodyBytes
    @Option(help: "How many requests may wait behind the running one (more: 503 with Retry-After).")
    var maxQueue = ServerLimits().maxQueue
    @Option(help: "Seconds before a silent connection (half-sent request, idle keep-alive) is closed; a body must arrive within it.")
    var idleTimeout = ServerLimits().idleTimeoutSeconds
    @Option(help: "The longest prompt text in bytes that is tokenized (default: context x the longest token).")
    var maxPromptBytes: Int?
    @Option(help: "Require 'Authorization: Bearer KEY' on /v1/ (default: $COLLIE_API_KEY; prefer it: options show in ps).")
    var apiKey: String?
    @OptionGroup var quantization: QuantizationOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxBody >= 1 else { throw ValidationError("--max-body must be at least 1 byte") }
        guard (0...1_000_000).contains(maxQueue) else { throw ValidationError("--max-queue must be in 0...1000000") }
        guard (1...86_400).contains(idleTimeout) else { throw ValidationError("--idle-timeout must be in 1...86400 seconds") }
        if let maxPromptBytes, maxPromptBytes < 1 { throw ValidationError("--max-prompt-bytes must be at least 1") }
    }

    func run() throws {
        let folder = URL(fileURLWithPath: model)
        let generator = try TextGenerator.load(from: folder, chatTemplate: chatTemplate.map(URL.init(fileURLWithPath:)),
                                               adapter: adapter.map(URL.init(fileURLWithPath:)),
                                               quantization: quantization.weightQuantization(model: model))
        let name = modelName ?? folder.standardizedFileURL.lastPathComponent
        let limits = ServerLimits(maxBodyBytes: maxBody, maxQueue: maxQueue, idleTimeoutSeconds: idleTimeout,
                                  maxPromptBytes: maxPromptBytes)
        let server = OpenAIServer(textGenerator: generator, modelName: name, limits: limits,
                                  apiKey: apiKey ?? ProcessInfo.processInfo.environment["COLLIE_API_KEY"])
        let host = self.host
        let port = self.port
        let done = DispatchSemaphore(value: 0)
        let failure = FailureBox()
        Task.detached {
            do {
                try await server.run(host: host, port: port) { bound in
                    print("collie serve: model '\(name)' listening on http://\(host):\(bound)")
                    fflush(nil)   // every C stream: the line above is for whoever reads ours
                }
            } catch {
                failure.error = error
            }
            done.signal()
        }
        done.wait()
        if let error = failure.error { throw error }
    }

    final class FailureBox: @unchecked Sendable { var error: Error? }
}
