/// A training config (`CollieConfig`, YAML or JSON) that cannot be used: unknown keys, values of the wrong type,
/// values out of range, settings not yet supported. Each issue names its key path (`optimizer.lr`,
/// `monitors[2]`) and, where known, the file and line. Errors of a model's config.json are
/// `ModelConfigurationError`.
///
/// ```text
/// train.yaml:7: optimizer.lerning_rate: unknown key (did you mean lr?)
/// train.yaml:9: lr_scheduler.warmup_ratio: must be in [0, 1], got 1.5
/// ```
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// One problem at one key.
    public struct Issue: CustomStringConvertible, Sendable, Equatable {
        /// Dotted path of the key, with `[i]` for list items; empty for the whole document.
        public var keyPath: String
        public var message: String
        /// The config file, or `--set key=value` for an override; nil when the config did not come from text.
        public var source: String?
        /// 1-based line in `source`, when the YAML parser reported one.
        public var line: Int?

        public init(keyPath: String, message: String, source: String? = nil, line: Int? = nil) {
            self.keyPath = keyPath
            self.message = message
            self.source = source
            self.line = line
        }

        public var description: String {
            var prefix = ""
            if let source { prefix = line.map { "\(source):\($0): " } ?? "\(source): " }
            return keyPath.isEmpty ? prefix + message : prefix + keyPath + ": " + message
        }
    }

    /// The problems found, in document order where they come from one pass.
    public var issues: [Issue]

    public init(issues: [Issue]) { self.issues = issues }

    public init(keyPath: String, _ message: String, source: String? = nil, line: Int? = nil) {
        issues = [Issue(keyPath: keyPath, message: message, source: source, line: line)]
    }

    /// One issue per line.
    public var description: String { issues.map(\.description).joined(separator: "\n") }

    /// The key paths named by the issues.
    public var keyPaths: [String] { issues.map(\.keyPath) }
}

/// "Did you mean …?" for misspelled keys and enum values.
enum Suggestion {
    /// Common names from other frameworks (Hugging Face `TrainingArguments`, torch) for Collie's keys.
    static let aliases: [String: String] = [
        "learning_rate": "lr", "epsilon": "eps", "adam_epsilon": "eps", "beta": "betas",
        "epochs": "train_epochs", "num_epochs": "train_epochs", "num_train_epochs": "train_epochs",
        "batch_size": "train_micro_batch_size", "micro_batch_size": "train_micro_batch_size",
        "per_device_train_batch_size": "train_micro_batch_size",
        "per_device_eval_batch_size": "eval_batch_size",
        "grad_accum": "gradient_accumulation_steps", "accumulation_steps": "gradient_accumulation_steps",
        "scheduler": "lr_scheduler", "lr_schedule": "lr_scheduler", "warmup": "warmup_steps",
        "clip_grad_norm": "max_grad_norm", "gradient_clipping": "max_grad_norm",
        "output_path": "output_dir", "save_dir": "output_dir", "torch_dtype": "dtype",
        "flash_attention": "use_flash", "gradient_checkpointing": "checkpointing",
        "train_file": "train_data", "eval_file": "eval_data", "dataset": "train_data",
        "max_seq_length": "max_length", "seq_length": "max_length", "max_seq_len": "max_length",
        "format": "record_format", "padding": "padding_side", "drop_last": "last_batch",
        "tokenizer_path": "tokenizer", "model_path": "model", "model_name_or_path": "model",
        "type": "name", "optimizer_name": "name",
    ]

    /// The candidate closest to `word` by edit distance (or through an alias), if it is close enough to be a typo.
    static func closest(to word: String, among candidates: some Collection<String>) -> String? {
        let word = word.lowercased()
        var best: (candidate: String, distance: Int)?
        func consider(_ spelling: String, meaning candidate: String) {
            let distance = editDistance(word, spelling.lowercased())
            let limit = max(1, min(3, spelling.count / 3))
            if distance <= limit, distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        for candidate in candidates { consider(candidate, meaning: candidate) }
        for (alias, candidate) in aliases where candidates.contains(candidate) { consider(alias, meaning: candidate) }
        return best?.candidate
    }

    /// " (did you mean X?)", or "" when nothing is close.
    static func hint(for word: String, among candidates: some Collection<String>) -> String {
        closest(to: word, among: candidates).map { " (did you mean \($0)?)" } ?? ""
    }

    /// Levenshtein distance over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count), current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
