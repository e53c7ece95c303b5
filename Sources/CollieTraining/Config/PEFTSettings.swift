import CollieModels

// `peft_config:` is decoded by CollieModels' `PEFTConfiguration` (PEFT's own field names); these conformances give
// its closed value sets the config's "unknown value … expected one of …" errors.
extension PEFTConfiguration.Method: ConfigEnum {}
extension PromptTuningConfiguration.Initialization: ConfigEnum {}
