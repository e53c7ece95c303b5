/// Where a record is: its file and the 1-based line it starts on.
public struct RecordLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    /// `file:line`.
    public var description: String { "\(file):\(line)" }
}

/// A dataset that cannot be used: a malformed line, a missing field, an id outside the vocabulary, no records.
/// The description starts with `file:line:` when the problem has a place.
public struct DatasetError: Error, CustomStringConvertible, Sendable, Equatable {
    public var location: RecordLocation?
    /// The file, when the problem concerns the whole file.
    public var file: String?
    public var message: String

    public init(_ location: RecordLocation?, _ message: String) {
        self.location = location
        self.file = location?.file
        self.message = message
    }

    public init(file: String, _ message: String) {
        location = nil
        self.file = file
        self.message = message
    }

    public var description: String {
        if let location { return "\(location): \(message)" }
        if let file { return "\(file): \(message)" }
        return message
    }
}
