import CollieGeneration
import CollieModels
import CollieTraining

/// Produces the continuation of a prompt (token ids in, new token ids out, a stop token included when reached).
/// Evaluators take one so that any decoding strategy can be plugged in; `greedyGenerator` is the default.
public typealias ContinuationGenerator = @Sendable (_ model: any CausalLanguageModel, _ prompt: [Int], _ settings: GenerationSettings) throws -> [Int]

/// Greedy decoding with the KV cache: `Generator`, the one decoder, with its default (greedy) parameters.
/// Under ZeRO stage 3 the trainer evaluates inside `withFullParameters`, so the model is whole here.
public let greedyGenerator: ContinuationGenerator = { model, prompt, settings in
    var parameters = GenerationParameters(maxNewTokens: settings.maxNewTokens)
    parameters.stopTokenIDs = Set(settings.stopTokenIDs ?? model.configuration.eosTokenIDs)
    return try Generator(model: model).generate(prompts: [prompt], parameters: parameters)[0].tokens
}
