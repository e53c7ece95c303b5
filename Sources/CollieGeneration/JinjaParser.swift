/// Parses a template's pieces into `JinjaNode`s and tag contents into `JinjaExpression`s.
struct JinjaParser {
    private var pieces: [JinjaLexer.Piece]
    private var position = 0
    /// Blocks (`if`, `for`) open around the statement being parsed.
    private var depth = 0

    static func parse(_ source: String) throws -> [JinjaNode] {
        var parser = JinjaParser(pieces: try JinjaLexer.pieces(source))
        let (nodes, end) = try parser.parseBlock(until: [])
        if let end { throw TemplateError("unexpected {% \(end.keyword) %}", line: end.line) }
        return nodes
    }

    private init(pieces: [JinjaLexer.Piece]) { self.pieces = pieces }

    /// Parses nodes until a statement whose keyword is in `terminators`; returns it (nil at the end).
    private mutating func parseBlock(until terminators: Set<String>)
        throws -> ([JinjaNode], (keyword: String, rest: [Token], line: Int)?) {
        var nodes: [JinjaNode] = []
        while position < pieces.count {
            let piece = pieces[position]
            position += 1
            switch piece {
            case .text(let t): nodes.append(.text(t))
            case .expression(let source, let line):
                var tokens = try ExpressionParser(source, line: line)
                let e = try tokens.parseExpression()
                try tokens.expectEnd()
                nodes.append(.output(e))
            case .statement(let source, let line):
                let tokens = try ExpressionLexer.tokens(source, line: line)
                guard case .name(let keyword)? = tokens.first else { throw TemplateError("empty statement", line: line) }
                let rest = Array(tokens.dropFirst())
                if terminators.contains(keyword) { return (nodes, (keyword, rest, line)) }
                nodes.append(try parseStatement(keyword, rest, line: line))
            }
        }
        if !terminators.isEmpty {
            let closer = terminators.first { $0.hasPrefix("end") } ?? terminators.sorted()[0]
            throw TemplateError("missing {% \(closer) %} at the end of the template")
        }
        return (nodes, nil)
    }

    private mutating func parseStatement(_ keyword: String, _ rest: [Token], line: Int) throws -> JinjaNode {
        if keyword == "if" || keyword == "for" {
            depth += 1
            guard depth <= JinjaLimits.maximumNesting else {
                throw JinjaLimits.exceeded("block nesting", limit: "maximumNesting", JinjaLimits.maximumNesting, line: line)
            }
        }
        defer { if keyword == "if" || keyword == "for" { depth -= 1 } }
        switch keyword {
        case "if":
            var branches: [(JinjaExpression, [JinjaNode])] = []
            var first = ExpressionParser(tokens: rest, line: line)
            var condition = try first.parseAll()
            while true {
                let (body, end) = try parseBlock(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                guard let end else { throw TemplateError("missing {% endif %}", line: line) }
                switch end.keyword {
                case "elif":
                    var next = ExpressionParser(tokens: end.rest, line: end.line)
                    condition = try next.parseAll()
                case "else":
                    let (otherwise, close) = try parseBlock(until: ["endif"])
                    guard close != nil else { throw TemplateError("missing {% endif %}", line: line) }
                    return .ifChain(branches, otherwise: otherwise)
                default: return .ifChain(branches, otherwise: [])
                }
            }
        case "for":
            var parser = ExpressionParser(tokens: rest, line: line)
            var variables = [try parser.expectName()]
            while parser.take(.symbol(",")) { variables.append(try parser.expectName()) }
            guard parser.take(.name("in")) else { throw TemplateError("expected 'in' in a for loop", line: line) }
            let iterable = try parser.parseOr()
            let filter = parser.take(.name("if")) ? try parser.parseExpression() : nil
            if parser.take(.name("recursive")) { throw TemplateError("recursive loops are not supported", line: line) }
            try parser.expectEnd()
            let (body, end) = try parseBlock(until: ["else", "endfor"])
            var otherwise: [JinjaNode] = []
            if end?.keyword == "else" {
                let (o, close) = try parseBlock(until: ["endfor"])
                guard close != nil else { throw TemplateError("missing {% endfor %}", line: line) }
                otherwise = o
            } else if end == nil {
                throw TemplateError("missing {% endfor %}", line: line)
            }
            return .forLoop(variables: variables, iterable: iterable, filter: filter, body: body, otherwise: otherwise)
        case "set":
            var parser = ExpressionParser(tokens: rest, line: line)
            let target = try parser.expectName()
            let attribute = parser.take(.symbol(".")) ? try parser.expectName() : nil
            guard parser.take(.symbol("=")) else {
                throw TemplateError("only `{% set name = value %}` is supported (no block set)", line: line)
            }
            let value = try parser.parseAll()
            return .set(target: target, attribute: attribute, value: value)
        case "break": return .breakLoop
        case "continue": return .continueLoop
        default:
            throw TemplateError("the '\(keyword)' statement is not supported (supported: if, for, set, break, continue)",
                                line: line)
        }
    }
}

/// Tokens of an expression.
enum Token: Equatable {
    case name(String)
    case string(String)
    case int(Int)
    case double(Double)
    case symbol(String)
}

enum ExpressionLexer {
    static let symbols = ["//", "**", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|", "+", "-",
                          "*", "/", "%", "~", "<", ">", "="]

    static func tokens(_ source: String, line: Int) throws -> [Token] {
        let s = Array(source)
        var tokens: [Token] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            if c.isWhitespace { i += 1; continue }
            if c.isLetter || c == "_" {
                var j = i
                while j < s.count, s[j].isLetter || s[j].isNumber || s[j] == "_" { j += 1 }
                tokens.append(.name(String(s[i..<j])))
                i = j
            } else if isDigit(c) {
                var j = i
                while j < s.count, isDigit(s[j]) { j += 1 }
                if j + 1 < s.count, s[j] == ".", isDigit(s[j + 1]) {
                    j += 1
                    while j < s.count, isDigit(s[j]) { j += 1 }
                    guard let value = Double(String(s[i..<j])) else {
                        throw TemplateError("the number \(String(s[i..<j])) cannot be read", line: line)
                    }
                    tokens.append(.double(value))
                } else {
                    guard let value = Int(String(s[i..<j])) else {
                        throw TemplateError("the integer \(String(s[i..<j])) is too large (at most \(Int.max))", line: line)
                    }
                    tokens.append(.int(value))
                }
                i = j
            } else if c == "'" || c == "\"" {
                var j = i + 1, value = ""
                while j < s.count, s[j] != c {
                    if s[j] == "\\", j + 1 < s.count {
                        j += 1
                        switch s[j] {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        default: value.append(s[j])
                        }
                    } else {
                        value.append(s[j])
                    }
                    j += 1
                }
                guard j < s.count else { throw TemplateError("unterminated string", line: line) }
                tokens.append(.string(value))
                i = j + 1
            } else if let symbol = symbols.first(where: { sym in
                i + sym.count <= s.count && String(s[i..<(i + sym.count)]) == sym
            }) {
                tokens.append(.symbol(symbol))
                i += symbol.count
            } else {
                throw TemplateError("unexpected character '\(c)'", line: line)
            }
        }
        return tokens
    }

    /// 0 to 9 only: `Character.isNumber` also holds for other scripts' digits and for fractions such as ½.
    private static func isDigit(_ c: Character) -> Bool { c.isASCII && c.isNumber }
}

/// A recursive-descent parser with Jinja's precedence: inline if < or < and < not < comparison
/// and tests < `~` < `+ -` < `* / // %` < unary minus < `**` < postfix (`.`, `[]`, calls, filters).
struct ExpressionParser {
    private var tokens: [Token]
    private var position = 0
    private let line: Int
    /// Nesting of the expression being parsed: parentheses, brackets, unary operators and chain links, each of
    /// which is one level of the tree the renderer walks recursively.
    private var depth = 0

    init(_ source: String, line: Int) throws {
        self.init(tokens: try ExpressionLexer.tokens(source, line: line), line: line)
    }

    init(tokens: [Token], line: Int) {
        self.tokens = tokens
        self.line = line
    }

    private var peek: Token? { position < tokens.count ? tokens[position] : nil }

    mutating func take(_ token: Token) -> Bool {
        if peek == token { position += 1; return true }
        return false
    }

    private mutating func expect(_ token: Token) throws {
        guard take(token) else { throw error("expected \(describe(token))") }
    }

    mutating func expectName() throws -> String {
        guard case .name(let n)? = peek else { throw error("expected a name") }
        position += 1
        return n
    }

    func expectEnd() throws {
        if position < tokens.count { throw error("unexpected \(describe(tokens[position]))") }
    }

    private func error(_ message: String) -> TemplateError { TemplateError(message, line: line) }

    /// Counts one more level of nesting; the caller restores `depth` when the level closes.
    private mutating func nest() throws {
        depth += 1
        guard depth <= JinjaLimits.maximumNesting else {
            throw JinjaLimits.exceeded("expression nesting", limit: "maximumNesting", JinjaLimits.maximumNesting,
                                       line: line)
        }
    }

    private func describe(_ token: Token) -> String {
        switch token {
        case .name(let n): "'\(n)'"
        case .string(let s): "string '\(s)'"
        case .int(let i): "\(i)"
        case .double(let d): "\(d)"
        case .symbol(let s): "'\(s)'"
        }
    }

    mutating func parseAll() throws -> JinjaExpression {
        let e = try parseExpression()
        try expectEnd()
        return e
    }

    mutating func parseExpression() throws -> JinjaExpression {
        let outer = depth
        defer { depth = outer }
        try nest()
        let value = try parseOr()
        if take(.name("if")) {
            let condition = try parseOr()
            let otherwise = take(.name("else")) ? try parseExpression() : nil
            return .conditional(value, condition: condition, otherwise: otherwise)
        }
        return value
    }

    mutating func parseOr() throws -> JinjaExpression {
        let outer = depth
        defer { depth = outer }
        var e = try parseAnd()
        while take(.name("or")) { try nest(); e = .binary("or", e, try parseAnd()) }
        return e
    }

    private mutating func parseAnd() throws -> JinjaExpression {
        let outer = depth
        defer { depth = outer }
        var e = try parseNot()
        while take(.name("and")) { try nest(); e = .binary("and", e, try parseNot()) }
        return e
    }

    private mutating func parseNot() throws -> JinjaExpression {
        if take(.name("not")) {
            let outer = depth
            defer { depth = outer }
            try nest()
            return .unary("not", try parseNot())
        }
        return try parseComparison()
    }

    private mutating func parseComparison() throws -> JinjaExpression {
        let outer = depth
        defer { depth = outer }
        var e = try parseConcatenation()
        while true {
            if let next = peek, next == .name("in") || next == .name("is") || next == .name("not")
                || [.symbol("=="), .symbol("!="), .symbol("<"), .symbol(">"), .symbol("<="), .symbol(">=")].contains(next) {
                try nest()
            }
            if case .symbol(let op)? = peek, ["==", "!=", "<", ">", "<=", ">="].contains(op) {
                position += 1
                e = .binary(op, e, try parseConcatenation())
            } else if take(.name("in")) {
                e = .binary("in", e, try parseConcatenation())
            } else if peek == .name("not"), position + 1 < tokens.count, tokens[position + 1] == .name("in") {
                position += 2
                e = .unary("not", .binary("in", e, try parseConcatenation()))
            } else if take(.name("is")) {
                let negated = take(.name("not"))
                let name = try expectName()
                var arguments: [JinjaExpression] = []
                if take(.symbol("(")) {
                    (arguments, _) = try parseArguments()
                } else if let next = peek, startsPrimary(next) {
                    arguments = [try parseConcatenation()]
                }
                e = .test(e, name: name, arguments: arguments, negated: negated)
            } else {
                return e
            }
        }
    }

    private func startsPrimary(_ token: Token) -> Bool {
        switch token {
        case .string, .int, .double: true
        case .name(let n): !["and", "or", "if", "else", "not", "in", "is"].contains(n)
        default: false
        }
    }

    private mutating func parseConcatenation() throws -> JinjaExpression {
        let outer = depth
        defer { depth = outer }
        var e = try parseAdditive()
        while take(.symbol("~")) { try nest(); e = .binary("~", e, try parseAdditive()) }
        return e
    }

    private mutating func parseAdditive() throws -> JinjaExpression {
        let outer = depth
        defer { depth = outer }
        var e = try parseMultiplicative()
        while case .symbol(let op)? = peek, op == "+" || op == "-" {
            position += 1
            try nest()
            e = .binary(op, e, try parseMultiplicative())
        }
        return e
    }

    private mutating func parseMultiplicative() throws -> JinjaExpression {
        let outer = depth
        defer { depth = outer }
        var e = try parseUnary()
        while case .symbol(let op)? = peek, ["*", "/", "//", "%"].contains(op) {
            position += 1
            try nest()
            e = .binary(op, e, try parseUnary())
        }
        return e
    }

    private mutating func parseUnary() throws -> JinjaExpression {
        if let sign = peek, sign == .symbol("-") || sign == .symbol("+") {
            position += 1
            let outer = depth
            defer { depth = outer }
            try nest()
            let operand = try parseUnary()
            return sign == .symbol("-") ? .unary("-", operand) : operand
        }
        return try parsePostfix()
    }

    private mutating func parsePostfix() throws -> JinjaExpression {
        let outer = depth
        defer { depth = outer }
        var e = try parsePrimary()
        while true {
            if let next = peek, [.symbol("."), .symbol("["), .symbol("("), .symbol("|")].contains(next) { try nest() }
            if take(.symbol(".")) {
                e = .attribute(e, try expectName())
            } else if take(.symbol("[")) {
                var start: JinjaExpression? = nil
                if peek != .symbol(":") { start = try parseExpression() }
                if take(.symbol(":")) {
                    var stop: JinjaExpression? = nil, step: JinjaExpression? = nil
                    if peek != .symbol("]") && peek != .symbol(":") { stop = try parseExpression() }
                    if take(.symbol(":")), peek != .symbol("]") { step = try parseExpression() }
                    try expect(.symbol("]"))
                    e = .slice(e, start: start, stop: stop, step: step)
                } else {
                    guard let start else { throw error("expected an index or a slice in []") }
                    try expect(.symbol("]"))
                    e = .index(e, start)
                }
            } else if take(.symbol("(")) {
                let (arguments, keywords) = try parseArguments()
                e = .call(e, arguments: arguments, keywords: keywords)
            } else if take(.symbol("|")) {
                let name = try expectName()
                var arguments: [JinjaExpression] = [], keywords: [(String, JinjaExpression)] = []
                if take(.symbol("(")) { (arguments, keywords) = try parseArguments() }
                e = .filter(e, name: name, arguments: arguments, keywords: keywords)
            } else {
                return e
            }
        }
    }

    /// Arguments after `(`, through `)`.
    private mutating func parseArguments() throws -> ([JinjaExpression], [(String, JinjaExpression)]) {
        var arguments: [JinjaExpression] = [], keywords: [(String, JinjaExpression)] = []
        while !take(.symbol(")")) {
            if case .name(let n)? = peek, position + 1 < tokens.count, tokens[position + 1] == .symbol("=") {
                position += 2
                keywords.append((n, try parseExpression()))
            } else {
                arguments.append(try parseExpression())
            }
            if !take(.symbol(",")) {
                try expect(.symbol(")"))
                break
            }
        }
        return (arguments, keywords)
    }

    private mutating func parsePrimary() throws -> JinjaExpression {
        guard let token = peek else { throw error("unexpected end of expression") }
        position += 1
        switch token {
        case .string(var s):
            while case .string(let more)? = peek { s += more; position += 1 }   // adjacent literals join
            return .literal(.string(s))
        case .int(let i): return .literal(.int(i))
        case .double(let d): return .literal(.double(d))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .symbol("("):
            let e = try parseExpression()
            if take(.symbol(",")) { throw error("tuples are not supported") }
            try expect(.symbol(")"))
            return e
        case .symbol("["):
            var items: [JinjaExpression] = []
            while !take(.symbol("]")) {
                items.append(try parseExpression())
                if !take(.symbol(",")) { try expect(.symbol("]")); break }
            }
            return .list(items)
        case .symbol("{"):
            var pairs: [(JinjaExpression, JinjaExpression)] = []
            while !take(.symbol("}")) {
                let key = try parseExpression()
                try expect(.symbol(":"))
                pairs.append((key, try parseExpression()))
                if !take(.symbol(",")) { try expect(.symbol("}")); break }
            }
            return .dictionary(pairs)
        default:
            throw error("unexpected \(describe(token))")
        }
    }
}
