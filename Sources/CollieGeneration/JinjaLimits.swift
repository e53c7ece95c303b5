/// The bounds every chat template renders within, so that a template from a stranger's model folder or request
/// cannot exhaust memory, time or the stack. Each is generous for real templates (thousands of messages) and is
/// named in the `TemplateError` of a template that passes it.
public enum JinjaLimits {
    /// Bytes of rendered output, and of any one string a template builds or prints (`~`, `+`, `join`,
    /// `replace`, `tojson`, printing a list): 8 MiB, about two million tokens of prompt.
    public static let maximumStringBytes = 8 << 20

    /// Items of any one list a template builds or iterates (`range`, list `+`, `split`, `list`).
    public static let maximumItems = 1_000_000

    /// Iterations of all of a render's loops together: a chat template loops over its messages (and their
    /// parts, tool calls…), so this is room for tens of thousands of messages, while nested loops over long
    /// ranges stop in well under a second.
    public static let maximumIterations = 200_000

    /// Depth of nested blocks (`if`, `for`) and of nested expressions (parentheses, brackets, unary
    /// operators, and the operands of a chain such as `a ~ b ~ c`). Real templates nest a few levels.
    public static let maximumNesting = 64

    /// The error for a template that went past `limit` (spelled as in this type, e.g. `maximumItems`).
    static func exceeded(_ what: String, limit name: String, _ value: Int, line: Int? = nil) -> TemplateError {
        TemplateError("\(what) is over the limit of \(value) (JinjaLimits.\(name))", line: line)
    }
}
