/// The parsed form of a chat template: statements and expressions of the Jinja subset Collie supports.
///
/// Supported: `{{ }}` output, `{% if/elif/else %}`, `{% for x in xs [if cond] %}` with `loop.*` and
/// `{% else %}`, `{% set x = … %}` and `{% set ns.x = … %}`, `{% break/continue %}`, comments, `-`
/// whitespace control, and Hugging Face's `trim_blocks`/`lstrip_blocks`. Expressions: literals,
/// lists, dictionaries, names, `.attr`, `[index]`, slices, calls, filters, tests, arithmetic,
/// comparison, `in`, `~`, `and/or/not`, and inline `if … else …`. Anything else (macros, blocks,
/// `include`, `{% filter %}`…) is a `TemplateError` naming the line.
indirect enum JinjaNode {
    case text(String)
    case output(JinjaExpression)
    case ifChain([(condition: JinjaExpression, body: [JinjaNode])], otherwise: [JinjaNode])
    case forLoop(variables: [String], iterable: JinjaExpression, filter: JinjaExpression?, body: [JinjaNode],
                 otherwise: [JinjaNode])
    case set(target: String, attribute: String?, value: JinjaExpression)
    case breakLoop, continueLoop
}

indirect enum JinjaExpression {
    case literal(JinjaValue)
    case name(String)
    case list([JinjaExpression])
    case dictionary([(JinjaExpression, JinjaExpression)])
    case attribute(JinjaExpression, String)
    case index(JinjaExpression, JinjaExpression)
    case slice(JinjaExpression, start: JinjaExpression?, stop: JinjaExpression?, step: JinjaExpression?)
    case call(JinjaExpression, arguments: [JinjaExpression], keywords: [(String, JinjaExpression)])
    case filter(JinjaExpression, name: String, arguments: [JinjaExpression], keywords: [(String, JinjaExpression)])
    case test(JinjaExpression, name: String, arguments: [JinjaExpression], negated: Bool)
    case unary(String, JinjaExpression)
    case binary(String, JinjaExpression, JinjaExpression)
    case conditional(JinjaExpression, condition: JinjaExpression, otherwise: JinjaExpression?)
}

/// A template that cannot be parsed or rendered, with the line it concerns when known.
public struct TemplateError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String, line: Int? = nil) {
        self.message = line.map { "chat template line \($0): \(message)" } ?? "chat template: \(message)"
    }
    public var description: String { message }
}

/// Splits a template into text and tags, applying whitespace control.
struct JinjaLexer {
    enum Piece {
        case text(String)
        case expression(String, line: Int)
        case statement(String, line: Int)
    }

    static func pieces(_ source: String, trimBlocks: Bool = true, lstripBlocks: Bool = true) throws -> [Piece] {
        let s = Array(source)
        var pieces: [Piece] = []
        var text = "", i = 0, line = 1
        var trimNextLeading = false   // a `-` closed the previous tag
        var trimNextNewline = false   // trim_blocks after a block tag
        func flushText(stripTrailing: Bool, lstrip: Bool) {
            var t = text
            if trimNextLeading { t = String(t.drop(while: \.isWhitespace)) }
            else if trimNextNewline, t.first == "\n" { t.removeFirst() }
            trimNextLeading = false; trimNextNewline = false
            if stripTrailing {
                while let last = t.last, last.isWhitespace { t.removeLast() }
            } else if lstrip {
                // Only spaces and tabs between the last newline (or the start) and the tag.
                var j = t.endIndex
                while j > t.startIndex, t[t.index(before: j)] == " " || t[t.index(before: j)] == "\t" { j = t.index(before: j) }
                if j == t.startIndex || t[t.index(before: j)] == "\n" { t = String(t[..<j]) }
            }
            if !t.isEmpty { pieces.append(.text(t)) }
            text = ""
        }
        while i < s.count {
            if s[i] == "{", i + 1 < s.count, ["{", "%", "#"].contains(s[i + 1]) {
                let kind = s[i + 1]
                let close: Character = kind == "{" ? "}" : kind
                let startLine = line
                var j = i + 2
                let stripLeft = j < s.count && s[j] == "-"
                let plusLeft = j < s.count && s[j] == "+"
                if stripLeft || plusLeft { j += 1 }
                // Find the closing `X}` outside string literals.
                var quote: Character? = nil
                var k = j
                while k + 1 < s.count {
                    let c = s[k]
                    if let q = quote {
                        if c == "\\" { k += 2; continue }
                        if c == q { quote = nil }
                    } else if kind != "#" && (c == "'" || c == "\"") {
                        quote = c
                    } else if c == close && s[k + 1] == "}" {
                        break
                    }
                    if c == "\n" { line += 1 }
                    k += 1
                }
                guard k + 1 < s.count else { throw TemplateError("unclosed tag", line: startLine) }
                var end = k
                let stripRight = end > j && s[end - 1] == "-"
                if stripRight || (end > j && s[end - 1] == "+") { end -= 1 }
                let body = String(s[j..<end]).trimmingCharacters(in: .whitespacesAndNewlines)
                let isBlock = kind != "{"
                flushText(stripTrailing: stripLeft, lstrip: isBlock && lstripBlocks && !plusLeft)
                switch kind {
                case "{": pieces.append(.expression(body, line: startLine))
                case "%": pieces.append(.statement(body, line: startLine))
                default: break
                }
                trimNextLeading = stripRight
                trimNextNewline = isBlock && trimBlocks
                i = k + 2
            } else {
                if s[i] == "\n" { line += 1 }
                text.append(s[i])
                i += 1
            }
        }
        flushText(stripTrailing: false, lstrip: false)
        return pieces
    }
}

import Foundation
