@_exported import CollieEngine
@_exported import CollieIO
@_exported import CollieModels
@_exported import CollieTraining
@_exported import CollieTokenizers
@_exported import CollieMetrics
@_exported import CollieGeneration
@_exported import CollieEvaluation

/// Collie's release version.
public enum Collie {
    public static let version = "0.1.0"
}
