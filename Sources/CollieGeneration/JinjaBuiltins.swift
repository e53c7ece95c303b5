import Foundation

/// The functions, methods, filters, tests and operators chat templates use.
enum JinjaBuiltins {
    static func function(_ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        switch name {
        case "raise_exception":
            throw TemplateError("the template raised an exception: \(args.first?.description ?? "")")
        case "namespace":
            let ns = JinjaNamespace()
            for (k, v) in kwargs { ns.set(k, v) }
            return .namespace(ns)
        case "range":
            let ints = try args.map { v -> Int in
                guard case .int(let i) = v else { throw TemplateError("range() needs integers") }
                return i
            }
            guard (1...3).contains(ints.count) else { throw TemplateError("range() takes 1 to 3 integers") }
            let (start, stop, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count > 2 ? ints[2] : 1)
            return .list(try range(from: start, to: stop, by: step))
        case "strftime_now":
            guard case .string(let format)? = args.first else { throw TemplateError("strftime_now() needs a format string") }
            var t = time(nil), tm = tm()
            localtime_r(&t, &tm)
            var buffer = [Int8](repeating: 0, count: 256)
            let n = strftime(&buffer, buffer.count, format, &tm)
            return .string(String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))
        default:
            throw TemplateError("unknown function '\(name)' (supported: raise_exception, namespace, range, strftime_now)")
        }
    }

    /// `range(start, stop, step)`, refused before allocating when longer than `JinjaLimits.maximumItems`.
    private static func range(from start: Int, to stop: Int, by step: Int) throws -> [JinjaValue] {
        guard step != 0 else { throw TemplateError("range() step cannot be zero") }
        let length = ((Double(stop) - Double(start)) / Double(step)).rounded(.up)
        guard length <= Double(JinjaLimits.maximumItems) else {
            let items = length < 1e18 ? String(Int(length)) : String(format: "%.3g", length)
            throw JinjaLimits.exceeded("range() of \(items) items", limit: "maximumItems", JinjaLimits.maximumItems)
        }
        var values: [JinjaValue] = []
        var value = start
        while step > 0 ? value < stop : value > stop {
            values.append(.int(value))
            let (next, overflow) = value.addingReportingOverflow(step)
            if overflow { break }
            value = next
        }
        return values
    }

    /// The characters of `s` as one-character strings (iterating or slicing a string), at most
    /// `JinjaLimits.maximumItems`.
    static func characters(of s: String) throws -> [JinjaValue] {
        try checkItems(s.utf8.count <= JinjaLimits.maximumItems ? 0 : s.count, "a string of characters")
        return s.map { .string(String($0)) }
    }

    /// Throws when `count` items are over `JinjaLimits.maximumItems`.
    static func checkItems(_ count: Int, _ what: String) throws {
        guard count <= JinjaLimits.maximumItems else {
            throw JinjaLimits.exceeded("\(what) (\(count) items)", limit: "maximumItems", JinjaLimits.maximumItems)
        }
    }

    /// Throws when a string of `bytes` bytes would be over `JinjaLimits.maximumStringBytes`.
    static func checkBytes(_ bytes: Int, _ what: String) throws {
        guard bytes <= JinjaLimits.maximumStringBytes else {
            throw JinjaLimits.exceeded("\(what) of \(bytes) bytes", limit: "maximumStringBytes",
                                       JinjaLimits.maximumStringBytes)
        }
    }

    static func method(_ name: String, on base: JinjaValue, _ args: [JinjaValue]) throws -> JinjaValue {
        func stringArgument(_ i: Int) throws -> String? {
            guard i < args.count else { return nil }
            guard case .string(let s) = args[i] else { throw TemplateError("\(name)() needs a string argument") }
            return s
        }
        switch (base, name) {
        case (.string(let s), "strip"): return .string(try strip(s, try stringArgument(0), leading: true, trailing: true))
        case (.string(let s), "lstrip"): return .string(try strip(s, try stringArgument(0), leading: true, trailing: false))
        case (.string(let s), "rstrip"): return .string(try strip(s, try stringArgument(0), leading: false, trailing: true))
        case (.string(let s), "upper"): return .string(s.uppercased())
        case (.string(let s), "lower"): return .string(s.lowercased())
        case (.string(let s), "title"): return .string(s.capitalized)
        case (.string(let s), "startswith"): return .bool(s.hasPrefix(try stringArgument(0) ?? ""))
        case (.string(let s), "endswith"): return .bool(s.hasSuffix(try stringArgument(0) ?? ""))
        case (.string(let s), "replace"):
            let old = try stringArgument(0) ?? "", new = try stringArgument(1) ?? ""
            guard !old.isEmpty else { return base }
            let parts = s.components(separatedBy: old)
            // Sizes are under the limits, so this cannot overflow.
            try checkBytes(s.utf8.count + (parts.count - 1) * (new.utf8.count - old.utf8.count), "replace()'s result")
            return .string(parts.joined(separator: new))
        case (.string(let s), "split"):
            let parts = if let separator = try stringArgument(0), !separator.isEmpty {
                s.components(separatedBy: separator)
            } else {
                s.split(whereSeparator: \.isWhitespace).map(String.init)
            }
            try checkItems(parts.count, "split()'s result")
            return .list(parts.map { .string($0) })
        case (.dictionary(let d, _), "get"):
            guard case .string(let key)? = args.first else { throw TemplateError("get() needs a string key") }
            return d[key] ?? (args.count > 1 ? args[1] : .none)
        case (.dictionary(let d, let order), "items"): return .list(order.map { .list([.string($0), d[$0] ?? .none]) })
        case (.dictionary(_, let order), "keys"): return .list(order.map { .string($0) })
        case (.dictionary(let d, let order), "values"): return .list(order.map { d[$0] ?? .none })
        default:
            throw TemplateError("\(base.representation) has no method '\(name)' supported here")
        }
    }

    private static func strip(_ s: String, _ characters: String?, leading: Bool, trailing: Bool) throws -> String {
        let set = characters.map { Set($0) }
        let remove = { (c: Character) in set?.contains(c) ?? c.isWhitespace }
        var result = Substring(s)
        if leading { result = result.drop(while: remove) }
        if trailing { while let last = result.last, remove(last) { result = result.dropLast() } }
        return String(result)
    }

    static func filter(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)])
        throws -> JinjaValue {
        switch name {
        case "trim":
            return .string(try strip(value.description, nil, leading: true, trailing: true))
        case "length", "count":
            switch value {
            case .string(let s): return .int(s.count)
            case .list(let l): return .int(l.count)
            case .dictionary(let d, _): return .int(d.count)
            default: throw TemplateError("\(value.representation) has no length")
            }
        case "lower": return .string(value.description.lowercased())
        case "upper": return .string(value.description.uppercased())
        case "capitalize":
            let s = value.description
            return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "title": return .string(value.description.capitalized)
        case "string": return .string(value.description)
        case "safe": return value
        case "tojson":
            if kwargs.contains(where: { $0.0 == "indent" }) || !args.isEmpty {
                throw TemplateError("tojson with indent is not supported")
            }
            return .string(value.json)
        case "first", "last":
            guard case .list(let l) = value else { throw TemplateError("\(name) needs a list") }
            return (name == "first" ? l.first : l.last) ?? .undefined
        case "reverse":
            if case .list(let l) = value { return .list(l.reversed()) }
            return .string(String(value.description.reversed()))
        case "list":
            if case .list = value { return value }
            if case .string(let s) = value { return .list(try characters(of: s)) }
            throw TemplateError("cannot make a list of \(value.representation)")
        case "join":
            guard case .list(let l) = value else { throw TemplateError("join needs a list") }
            let separator = args.first?.description ?? ""
            var joined = ""
            for (i, item) in l.enumerated() {
                if i > 0 { joined += separator }
                joined += item.description
                try checkBytes(joined.utf8.count, "join()'s result")
            }
            return .string(joined)
        case "default", "d":
            let fallback = args.first ?? .string("")
            let useOnFalse = args.count > 1 && args[1].isTrue
            if case .undefined = value { return fallback }
            return useOnFalse && !value.isTrue ? fallback : value
        case "int":
            switch value {
            case .int: return value
            case .double(let d):
                guard let i = Int(exactly: d.rounded(.towardZero)) else {
                    throw TemplateError("\(value.representation) cannot be converted to an int")
                }
                return .int(i)
            case .string(let s): return .int(Int(s.trimmingCharacters(in: .whitespaces)) ?? 0)
            case .bool(let b): return .int(b ? 1 : 0)
            default: return .int(0)
            }
        case "items":
            return try method("items", on: value, [])
        default:
            throw TemplateError("unknown filter '\(name)'")
        }
    }

    static func test(_ name: String, _ value: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        switch name {
        case "defined": if case .undefined = value { return false }; return true
        case "undefined": if case .undefined = value { return true }; return false
        case "none": return value == .none
        case "string": if case .string = value { return true }; return false
        case "number": switch value { case .int, .double: return true; default: return false }
        case "integer": if case .int = value { return true }; return false
        case "boolean": if case .bool = value { return true }; return false
        case "true": return value == .bool(true)
        case "false": return value == .bool(false)
        case "mapping": if case .dictionary = value { return true }; return false
        case "sequence", "iterable":
            switch value { case .list, .string, .dictionary: return true; default: return false }
        case "even", "odd":
            guard case .int(let i) = value else { throw TemplateError("'\(name)' needs an integer") }
            return (i % 2 == 0) == (name == "even")
        case "eq", "equalto", "==": return try value.isEqual(to: args.first ?? .undefined)
        case "ne", "!=": return try !value.isEqual(to: args.first ?? .undefined)
        case "in": return try binary("in", value, args.first ?? .undefined).isTrue
        default: throw TemplateError("unknown test '\(name)'")
        }
    }

    static func binary(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue {
        switch op {
        case "==": return .bool(try l.isEqual(to: r))
        case "!=": return .bool(try !l.isEqual(to: r))
        case "~":
            let (a, b) = (l.description, r.description)
            try checkBytes(a.utf8.count + b.utf8.count, "'~'")
            return .string(a + b)
        case "in":
            switch r {
            case .list(let items): return .bool(try items.contains { try $0.isEqual(to: l) })
            case .string(let s): return .bool(s.contains(l.description))
            case .dictionary(let d, _): if case .string(let k) = l { return .bool(d[k] != nil) }; return .bool(false)
            case .undefined, .none: return .bool(false)
            default: throw TemplateError("'in' needs a list, string or mapping on its right")
            }
        default: break
        }
        switch (l, r) {
        case (.string(let a), .string(let b)):
            switch op {
            case "+":
                try checkBytes(a.utf8.count + b.utf8.count, "'+'")
                return .string(a + b)
            case "<": return .bool(a < b)
            case ">": return .bool(a > b)
            case "<=": return .bool(a <= b)
            case ">=": return .bool(a >= b)
            default: break
            }
        case (.list(let a), .list(let b)) where op == "+":
            try checkItems(a.count + b.count, "'+' of two lists")
            return .list(a + b)
        case (.int(let a), .int(let b)):
            switch op {
            case "+", "-", "*":
                let (result, overflow) = op == "+" ? a.addingReportingOverflow(b)
                    : op == "-" ? a.subtractingReportingOverflow(b) : a.multipliedReportingOverflow(by: b)
                guard !overflow else { throw TemplateError("integer overflow in \(a) \(op) \(b)") }
                return .int(result)
            case "/":
                guard b != 0 else { throw TemplateError("division by zero") }
                return .double(Double(a) / Double(b))
            case "//", "%":
                guard b != 0 else { throw TemplateError("division by zero") }
                if op == "%" && b == -1 { return .int(0) }  // Int.min % -1 would overflow
                // Python floors: the remainder takes the divisor's sign.
                let (quotient, overflow) = a.dividedReportingOverflow(by: b)
                guard !overflow else { throw TemplateError("integer overflow in \(a) // \(b)") }
                let remainder = a - quotient * b
                let floors = remainder != 0 && (remainder < 0) != (b < 0)
                return .int(op == "//" ? (floors ? quotient - 1 : quotient) : (floors ? remainder + b : remainder))
            case "<": return .bool(a < b)
            case ">": return .bool(a > b)
            case "<=": return .bool(a <= b)
            case ">=": return .bool(a >= b)
            default: break
            }
        default:
            if let a = number(l), let b = number(r) {
                switch op {
                case "+": return .double(a + b)
                case "-": return .double(a - b)
                case "*": return .double(a * b)
                case "/":
                    guard b != 0 else { throw TemplateError("division by zero") }
                    return .double(a / b)
                case "<": return .bool(a < b)
                case ">": return .bool(a > b)
                case "<=": return .bool(a <= b)
                case ">=": return .bool(a >= b)
                default: break
                }
            }
        }
        throw TemplateError("unsupported operation \(l.representation) \(op) \(r.representation)")
    }

    private static func number(_ v: JinjaValue) -> Double? {
        switch v {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
}
