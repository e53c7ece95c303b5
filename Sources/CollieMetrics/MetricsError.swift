/// A metric could not be computed from its input; the message names what is wrong (file, line, key).
public struct MetricsError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
