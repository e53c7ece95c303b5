import CollieEngine
import CollieModels

extension ModelPreset: ConfigEnum {}
extension BlockFormat: ConfigEnum {}

extension CollieConfig {
    /// `model:` — a Hugging Face model folder to fine-tune, or a preset name to train from random initialization.
    /// In a config file a preset's name wins over a folder of the same name (write `./tiny` for the folder).
    public enum ModelSource: Codable, Equatable, Sendable, CustomStringConvertible {
        case preset(ModelPreset)
        case folder(String)

        public init(_ text: String) {
            self = ModelPreset(rawValue: text).map(ModelSource.preset) ?? .folder(text)
        }

        public init(from decoder: Decoder) throws {
            self.init(try decoder.singleValueContainer().decode(String.self))
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(description)
        }

        /// The preset name or the folder path, as written in a config.
        public var description: String {
            switch self {
            case .preset(let preset): preset.rawValue
            case .folder(let path): path
            }
        }
    }
}
