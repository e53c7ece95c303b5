import CollieGeneration
import XCTest

/// A chat template comes from a stranger's model folder or request: its arithmetic never traps, and
/// its loops, output, and nesting are bounded by `JinjaLimits`, each named in the error.
final class TemplateLimitsTests: XCTestCase {
    private func render(_ source: String) throws -> String {
        try ChatTemplate(source).render([ChatMessage(role: "user", content: "hi")])
    }

    private func assertTemplateError(_ source: String, mentions words: [String], line: UInt = #line) {
        XCTAssertThrowsError(try render(source), line: line) { error in
            XCTAssertTrue(error is TemplateError, "\(error)", line: line)
            for word in words { XCTAssertTrue("\(error)".contains(word), "\(error) lacks \(word)", line: line) }
        }
    }

    func testIntegerOverflowIsAnError() {
        assertTemplateError("{{ 9223372036854775807 + 1 }}", mentions: ["overflow"])
        assertTemplateError("{{ -9223372036854775807 - 2 }}", mentions: ["overflow"])
        assertTemplateError("{{ 4611686018427387904 * 2 }}", mentions: ["overflow"])
        assertTemplateError("{{ -(-9223372036854775807 - 1) }}", mentions: ["overflow"])
        assertTemplateError("{{ (-9223372036854775807 - 1) // -1 }}", mentions: ["overflow"])
        assertTemplateError("{{ 99999999999999999999 }}", mentions: ["line 1", "99999999999999999999"])
        assertTemplateError("{{ (9223372036854775807 * 1.0 * 4) | int }}", mentions: ["int"])
        assertTemplateError("{{ ٣ }}", mentions: ["line 1", "unexpected character"])
        assertTemplateError("{{ 1 // 0 }}", mentions: ["division by zero"])
        assertTemplateError("{{ 1 / 0 }}", mentions: ["division by zero"])
    }

    func testIntegerDivisionIsExactAndFloors() throws {
        XCTAssertEqual(try render("{{ 9007199254740993 // 1 }}"), "9007199254740993")
        XCTAssertEqual(try render("{{ -7 // 2 }} {{ -7 % 2 }} {{ 7 % -2 }} {{ 7 // -2 }} {{ 6 % 3 }}"), "-4 1 -1 -4 0")
        XCTAssertEqual(try render("{{ (-9223372036854775807 - 1) % -1 }}"), "0")
    }

    func testRangesAndSlicesNearIntegerLimitsDoNotTrap() throws {
        XCTAssertEqual(try render("{{ range(9223372036854775805, 9223372036854775807, 5) | list }}"),
                       "[9223372036854775805]")
        XCTAssertEqual(try render("{{ range(-9223372036854775806, -9223372036854775807 - 1, -5) | length }}"), "1")
        XCTAssertEqual(try render("{{ [1, 2, 3][1::9223372036854775807] }}"), "[2]")
        XCTAssertEqual(try render("{{ [1, 2, 3][::-9223372036854775807] }}"), "[3]")
        XCTAssertEqual(try render("{{ [1, 2, 3][-9223372036854775807:9223372036854775807] }}"), "[1, 2, 3]")
        XCTAssertEqual(try render("{{ 'abc'[-9223372036854775807] }}|"), "|")
    }

    func testHugeRangeIsRefusedBeforeAllocating() {
        assertTemplateError("{% for i in range(1000000000) %}{% endfor %}", mentions: ["range", "maximumItems"])
        assertTemplateError("{{ range(-9223372036854775807 - 1, 9223372036854775807) | length }}",
                            mentions: ["maximumItems"])
    }

    func testLoopIterationsAreBounded() {
        let nested = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        assertTemplateError(nested, mentions: ["iterations", "maximumIterations"])
    }

    func testOutputAndStringsAreBounded() {
        let doubling = "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        assertTemplateError(doubling, mentions: ["maximumStringBytes"])
        let plusDoubling = "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"
        assertTemplateError(plusDoubling, mentions: ["maximumStringBytes"])
        // A list holding another twice doubles in size at each step while its memory barely grows: `set` refuses it
        // once it is past maximumItems values, and printing or comparing lists built inline stops at the limits.
        let sharedList = "{% set ns = namespace(x=[1]) %}{% for i in range(64) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}"
        assertTemplateError(sharedList, mentions: ["maximumItems"])
        let eightMegabytes = "{% set ns = namespace(s='x') %}{% for i in range(23) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        assertTemplateError(eightMegabytes + "{{ [ns.s, ns.s] }}", mentions: ["maximumStringBytes"])
        assertTemplateError(eightMegabytes + "{{ [ns.s, ns.s] | tojson }}", mentions: ["maximumStringBytes"])
        assertTemplateError(eightMegabytes + "{{ [ns.s, ns.s] | join(',') }}", mentions: ["maximumStringBytes"])
        let halfMillion = "{% set ns = namespace(x=[1]) %}{% for i in range(18) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}"
        assertTemplateError(halfMillion + "{{ [[ns.x, ns.x], ns.x] == [[ns.x, ns.x], 1] }}",
                            mentions: ["comparing", "maximumItems"])
        let listDoubling = "{% set ns = namespace(x=[1]) %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}{% endfor %}"
        assertTemplateError(listDoubling, mentions: ["maximumItems"])
        let replacing = "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s.replace('x', ns.s) %}{% endfor %}"
        assertTemplateError(replacing, mentions: ["maximumStringBytes"])
        let printing = "{% for i in range(100000) %}{{ '" + String(repeating: "x", count: 10_000) + "' }}{% endfor %}"
        assertTemplateError(printing, mentions: ["output", "maximumStringBytes"])
    }

    func testDeepNestingIsAnErrorNotAStackOverflow() {
        let depth = 10_000  // 10,000 levels overflowed the stack before
        let parentheses = "{{ " + String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth) + " }}"
        assertTemplateError(parentheses, mentions: ["line 1", "maximumNesting"])
        assertTemplateError("{{ " + String(repeating: "[", count: depth) + " }}", mentions: ["maximumNesting"])
        assertTemplateError("{{ " + String(repeating: "-", count: depth) + "1 }}", mentions: ["maximumNesting"])
        assertTemplateError("{{ " + String(repeating: "not ", count: depth) + "1 }}", mentions: ["maximumNesting"])
        let chain = "{{ 1" + String(repeating: " ~ 1", count: depth) + " }}"
        assertTemplateError(chain, mentions: ["maximumNesting"])
        let blocks = String(repeating: "{% if true %}", count: depth) + String(repeating: "{% endif %}", count: depth)
        assertTemplateError(blocks, mentions: ["line 1", "maximumNesting"])
    }

    func testValuesNestedByALoopOrHoldingThemselvesAreErrors() {
        let wrapping = "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}"
        assertTemplateError(wrapping + "{{ ns.x }}", mentions: ["maximumNesting"])
        let selfHolding = "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns | tojson }}"
        assertTemplateError(selfHolding, mentions: ["holding itself", "maximumNesting"])
        let viaList = "{% set ns = namespace() %}{% set ns.l = [ns] %}{{ ns | tojson }}"
        assertTemplateError(viaList, mentions: ["maximumNesting"])
        let plainSet = "{% set x = [] %}{% for i in range(100000) %}{% set x = [x] %}{% endfor %}{{ x }}"
        assertTemplateError(plainSet, mentions: ["maximumNesting"])
    }

    func testThousandsOfMessagesRenderWithinTheLimits() throws {
        let template = try ChatTemplate("""
            {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}
            """)
        let messages = (0..<5_000).map { ChatMessage(role: $0 % 2 == 0 ? "user" : "assistant", content: "message \($0)") }
        let text = try template.render(messages)
        XCTAssertEqual(text.components(separatedBy: "<|im_end|>").count, 5_001)
        XCTAssertTrue(text.hasSuffix("message 4999<|im_end|>\n"))
    }
}
