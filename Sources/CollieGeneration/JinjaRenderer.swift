/// Evaluates parsed template nodes against a context of variables.
final class JinjaRenderer {
    private var scopes: [[String: JinjaValue]]
    private var output = ""
    /// Loop iterations so far, all loops together (bounded by `JinjaLimits.maximumIterations`).
    private var iterations = 0

    private enum LoopSignal: Error { case breakLoop, continueLoop }

    init(context: [String: JinjaValue]) { scopes = [context] }

    func render(_ nodes: [JinjaNode]) throws -> String {
        do {
            try run(nodes)
        } catch is LoopSignal {
            throw TemplateError("break or continue outside a loop")
        }
        return output
    }

    private func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() { if let v = scope[name] { return v } }
        return .undefined
    }

    private func assign(_ name: String, _ value: JinjaValue) { scopes[scopes.count - 1][name] = value }

    private func run(_ nodes: [JinjaNode]) throws {
        for node in nodes {
            switch node {
            case .text(let t): try write(t)
            case .output(let e): try write(try evaluate(e).description)
            case .ifChain(let branches, let otherwise):
                if let branch = try branches.first(where: { try evaluate($0.condition).isTrue }) {
                    try run(branch.body)
                } else {
                    try run(otherwise)
                }
            case .forLoop(let variables, let iterable, let filter, let body, let otherwise):
                try runLoop(variables, try evaluate(iterable), filter: filter, body: body, otherwise: otherwise)
            case .set(let target, let attribute, let value):
                let v = try evaluate(value)
                if let attribute {
                    guard case .namespace(let ns) = lookup(target) else {
                        throw TemplateError("cannot set '\(target).\(attribute)': '\(target)' is not a namespace()")
                    }
                    ns.set(attribute, v)
                    try JinjaValue.namespace(ns).checkNesting()
                } else {
                    try v.checkNesting()
                    assign(target, v)
                }
            case .breakLoop: throw LoopSignal.breakLoop
            case .continueLoop: throw LoopSignal.continueLoop
            }
        }
    }

    private func write(_ text: String) throws {
        output += text
        guard output.utf8.count <= JinjaLimits.maximumStringBytes else {
            throw JinjaLimits.exceeded("the output", limit: "maximumStringBytes", JinjaLimits.maximumStringBytes)
        }
    }

    private func countIteration() throws {
        iterations += 1
        guard iterations <= JinjaLimits.maximumIterations else {
            throw JinjaLimits.exceeded("the number of loop iterations", limit: "maximumIterations",
                                       JinjaLimits.maximumIterations)
        }
    }

    private func runLoop(_ variables: [String], _ sequence: JinjaValue, filter: JinjaExpression?, body: [JinjaNode],
                         otherwise: [JinjaNode]) throws {
        var items = try iterate(sequence)
        scopes.append([:])
        defer { scopes.removeLast() }
        if let filter {
            items = try items.filter { item in
                try countIteration()
                try bind(variables, item)
                return try evaluate(filter).isTrue
            }
        }
        if items.isEmpty { return try run(otherwise) }
        for (i, item) in items.enumerated() {
            try countIteration()
            try bind(variables, item)
            let n = items.count
            assign("loop", .object([
                ("index", .int(i + 1)), ("index0", .int(i)), ("revindex", .int(n - i)), ("revindex0", .int(n - i - 1)),
                ("first", .bool(i == 0)), ("last", .bool(i == n - 1)), ("length", .int(n)),
                ("previtem", i > 0 ? items[i - 1] : .undefined), ("nextitem", i < n - 1 ? items[i + 1] : .undefined),
            ]))
            do {
                try run(body)
            } catch LoopSignal.breakLoop {
                break
            } catch LoopSignal.continueLoop {
                continue
            }
        }
    }

    private func bind(_ variables: [String], _ item: JinjaValue) throws {
        if variables.count == 1 { return assign(variables[0], item) }
        guard case .list(let parts) = item, parts.count == variables.count else {
            throw TemplateError("cannot unpack \(item.representation) into \(variables.joined(separator: ", "))")
        }
        for (name, value) in zip(variables, parts) { assign(name, value) }
    }

    private func iterate(_ value: JinjaValue) throws -> [JinjaValue] {
        switch value {
        case .list(let l): return l
        case .dictionary(_, let order): return order.map { .string($0) }
        case .string(let s): return try JinjaBuiltins.characters(of: s)
        case .undefined, .none: return []
        default: throw TemplateError("\(value.representation) is not iterable")
        }
    }

    // MARK: - Expressions

    /// The value of `e`; a string it builds past `JinjaLimits.maximumStringBytes` is an error.
    func evaluate(_ e: JinjaExpression) throws -> JinjaValue {
        let value = try evaluateUnchecked(e)
        if case .string(let s) = value, s.utf8.count > JinjaLimits.maximumStringBytes {
            throw JinjaLimits.exceeded("a string of \(s.utf8.count) bytes", limit: "maximumStringBytes",
                                       JinjaLimits.maximumStringBytes)
        }
        return value
    }

    private func evaluateUnchecked(_ e: JinjaExpression) throws -> JinjaValue {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items): return .list(try items.map(evaluate))
        case .dictionary(let pairs):
            return .object(try pairs.map { (try evaluate($0.0).description, try evaluate($0.1)) })
        case .attribute(let base, let name):
            let b = try evaluate(base)
            return try attribute(b, name)
        case .index(let base, let index):
            return try subscripted(try evaluate(base), try evaluate(index))
        case .slice(let base, let start, let stop, let step):
            return try sliced(try evaluate(base), start: start.map(evaluate), stop: stop.map(evaluate),
                              step: step.map(evaluate))
        case .call(let callee, let arguments, let keywords):
            let args = try arguments.map(evaluate)
            let kwargs = try keywords.map { ($0.0, try evaluate($0.1)) }
            if case .attribute(let base, let method) = callee {
                return try JinjaBuiltins.method(method, on: try evaluate(base), args)
            }
            if case .name(let function) = callee { return try JinjaBuiltins.function(function, args, kwargs) }
            throw TemplateError("only named functions and methods can be called")
        case .filter(let base, let name, let arguments, let keywords):
            return try JinjaBuiltins.filter(name, try evaluate(base), try arguments.map(evaluate),
                                            try keywords.map { ($0.0, try evaluate($0.1)) })
        case .test(let base, let name, let arguments, let negated):
            let result = try JinjaBuiltins.test(name, try evaluate(base), try arguments.map(evaluate))
            return .bool(result != negated)
        case .unary(let op, let operand):
            let v = try evaluate(operand)
            if op == "not" { return .bool(!v.isTrue) }
            switch v {
            case .int(let i):
                let (negated, overflow) = Int(0).subtractingReportingOverflow(i)
                guard !overflow else { throw TemplateError("integer overflow in -(\(i))") }
                return .int(negated)
            case .double(let d): return .double(-d)
            default: throw TemplateError("cannot negate \(v.representation)")
            }
        case .binary(let op, let left, let right):
            let l = try evaluate(left)
            if op == "and" { return l.isTrue ? try evaluate(right) : l }
            if op == "or" { return l.isTrue ? l : try evaluate(right) }
            return try JinjaBuiltins.binary(op, l, try evaluate(right))
        case .conditional(let value, let condition, let otherwise):
            if try evaluate(condition).isTrue { return try evaluate(value) }
            return try otherwise.map(evaluate) ?? .undefined
        }
    }

    private func attribute(_ base: JinjaValue, _ name: String) throws -> JinjaValue {
        switch base {
        case .dictionary(let d, _): return d[name] ?? .undefined
        case .namespace(let ns): return ns.values[name] ?? .undefined
        case .undefined: throw TemplateError("'\(name)' of an undefined value")
        default: return .undefined
        }
    }

    private func subscripted(_ base: JinjaValue, _ index: JinjaValue) throws -> JinjaValue {
        switch (base, index) {
        case (.list(let l), .int(let i)):
            let j = i < 0 ? l.count + i : i
            return l.indices.contains(j) ? l[j] : .undefined
        case (.string(let s), .int(let i)):
            let chars = Array(s), j = i < 0 ? chars.count + i : i
            return chars.indices.contains(j) ? .string(String(chars[j])) : .undefined
        case (.dictionary(let d, _), .string(let k)): return d[k] ?? .undefined
        case (.namespace(let ns), .string(let k)): return ns.values[k] ?? .undefined
        case (.undefined, _): throw TemplateError("\(index.representation) of an undefined value")
        default: return .undefined
        }
    }

    private func sliced(_ base: JinjaValue, start: JinjaValue?, stop: JinjaValue?, step: JinjaValue?) throws -> JinjaValue {
        func int(_ v: JinjaValue?) throws -> Int? {
            switch v {
            case nil, .none?: return nil
            case .int(let i)?: return i
            default: throw TemplateError("slice bounds must be integers")
            }
        }
        let items: [JinjaValue]
        switch base {
        case .list(let l): items = l
        case .string(let s): items = try JinjaBuiltins.characters(of: s)
        default: throw TemplateError("cannot slice \(base.representation)")
        }
        let n = items.count, stride = try int(step) ?? 1
        guard stride != 0 else { throw TemplateError("slice step cannot be zero") }
        func clamp(_ i: Int?, _ fallback: Int) -> Int {
            guard var i else { return fallback }
            if i < 0 { i += n }
            return stride > 0 ? min(max(i, 0), n) : min(max(i, -1), n - 1)
        }
        var result: [JinjaValue] = []
        var i = clamp(try int(start), stride > 0 ? 0 : n - 1)
        let end = clamp(try int(stop), stride > 0 ? n : -1)
        while stride > 0 ? i < end : i > end {
            result.append(items[i])
            let (next, overflow) = i.addingReportingOverflow(stride)
            if overflow { break }
            i = next
        }
        if case .string = base { return .string(result.map(\.description).joined()) }
        return .list(result)
    }
}
