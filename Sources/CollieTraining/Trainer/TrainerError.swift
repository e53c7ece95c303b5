/// A problem that stops training: a setting not supported, a checkpoint that does not fit the run, data the
/// model cannot read. The message names the config key or the file.
public struct TrainerError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
