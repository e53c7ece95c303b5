/// The key clients must send as OpenAI's `Authorization: Bearer KEY` header, compared in constant
/// time so response times do not tell an attacker how much of a guess was right.
struct APIKey: Sendable {
    private let bytes: [UInt8]

    /// nil when `key` is nil or empty (no key: every client is served).
    init?(_ key: String?) {
        guard let key, !key.isEmpty else { return nil }
        bytes = Array(key.utf8)
    }

    /// Whether an `Authorization` header value carries this key.
    func accepts(authorization: String?) -> Bool {
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else { return false }
        let given = Array(authorization.utf8.dropFirst(7))
        // Every byte of the key is compared whatever the guess; only the key's length shows in the time taken.
        var difference: UInt8 = given.count == bytes.count ? 0 : 1
        for index in bytes.indices { difference |= bytes[index] ^ (index < given.count ? given[index] : 0) }
        return difference == 0
    }
}
