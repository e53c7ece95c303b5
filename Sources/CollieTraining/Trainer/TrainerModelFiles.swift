import CollieEngine
import CollieIO
import CollieModels
import Foundation

/// The trained model's files: saving it (a Hugging Face folder, or with a PEFT adapter the adapter's folder) and
/// loading weights back into it in place.
extension Trainer {
    /// Copies the weights of the Hugging Face folder `folder` into the model's parameters in place, checking every
    /// key and shape (`CausalLanguageModel.loadWeights(from:)`); with a PEFT adapter, the adapter's tensors from the
    /// PEFT folder `folder`. Under tensor parallelism each rank copies its slices of the folder's whole tensors.
    public func loadWeights(from folder: URL) throws {
        if grid.tensorParallelSize > 1 {
            try model.loadTensorParallelSlices(from: folder, communicator: grid.tensorParallel)
        } else if model.peftConfiguration != nil {
            do { try model.loadAdapter(from: folder) } catch { throw TrainerError("\(error)") }
        } else {
            try model.loadWeights(from: folder)
        }
    }

    /// Saves the model as a Hugging Face folder at `folder` (with a PEFT adapter: the adapter as a PEFT folder),
    /// atomically (written beside it, then renamed).
    public func saveModel(to folder: URL, dtype: DType = .float32) throws {
        try AtomicFolder.write(at: folder) { try saveModelFiles(to: $0, dtype: dtype) }
    }

    /// Writes what the model is into `folder`: a Hugging Face model, or with a PEFT adapter only the adapter
    /// (`adapter_config.json` + `adapter_model.safetensors`, recording `baseModelReference`), since the base
    /// model does not change; a model folder's remote code (`RemoteCode`); and the tokenizer's files (`tokenizerFiles`) with
    /// its chat template.
    /// - Throws: `TrainerError` when a trained weight is NaN or infinite (a diverged run): such a model is never
    ///   saved, so `final/`, `best/` and checkpoints always hold a usable model.
    /// - Parameter whole: the model to write instead of `model` (under tensor parallelism, its gathered copy).
    public func saveModelFiles(to folder: URL, dtype: DType = .float32, whole: (any CausalLanguageModel)? = nil) throws {
        let model = whole ?? self.model
        let nonFinite = nonFiniteParameterValues()
        if nonFinite > 0 {
            throw TrainerError("""
                after \(state.globalStep) updates \(nonFinite) of the \(parameterBuffer.count) trained weights are NaN or \
                infinite (training diverged); the model is not saved. \
                Lower optimizer.lr or set max_grad_norm, and start again or resume from an earlier checkpoint
                """)
        }
        if model.peftConfiguration != nil {
            try model.saveAdapter(to: folder, baseModelNameOrPath: baseModelReference)
        } else {
            try model.save(to: folder, dtype: dtype)
            if case .folder(let path) = config.model { try RemoteCode.copy(from: URL(fileURLWithPath: path), to: folder) }
        }
        try tokenizerFiles?.write(to: folder)
    }

    /// The dtype the trained model is saved in: the weights' own when they are bf16 or f16 (as `save_pretrained`
    /// writes a bf16 model: nothing is lost, and a 7B model stays 13.5 GB), else float32. An adapter is float32.
    public var savedWeightType: DType {
        model.peftConfiguration == nil && (parameterBuffer.dtype == .bfloat16 || parameterBuffer.dtype == .float16)
            ? parameterBuffer.dtype : .float32
    }

    /// How many values of the trained parameters are NaN or infinite.
    public func nonFiniteParameterValues() -> Int {
        var count = 0
        for p in parameterBuffer.parameters {
            let values = p.dtype == .float32 && p.isContiguous ? p : p.contiguousCopy(dtype: .float32)
            let pointer = values.pointer(as: Float.self)
            for i in 0..<values.count where !pointer[i].isFinite { count += 1 }
        }
        return count
    }

    /// Where the base model of a PEFT run is: the model folder, or for a preset `output_dir/base_model`, which
    /// `saveBaseModel()` writes.
    public var baseModelReference: String {
        switch config.model {
        case .folder(let path): URL(fileURLWithPath: path).standardizedFileURL.path
        case .preset: outputDirectory.appendingPathComponent(Self.baseModelFolderName).standardizedFileURL.path
        }
    }

    /// The folder under `output_dir` that holds a preset's randomly initialized base model in a PEFT run.
    public static let baseModelFolderName = "base_model"

    /// In a PEFT run on a preset, writes the (frozen, randomly initialized) base model to `baseModelReference`
    /// as a Hugging Face folder, so the saved adapters have a base to load onto. Does nothing otherwise.
    public func saveBaseModel() throws {
        guard model.peftConfiguration != nil, case .preset = config.model else { return }
        try AtomicFolder.write(at: URL(fileURLWithPath: baseModelReference)) { try model.save(to: $0) }
    }
}
