import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Two hosts on one machine: two Linux network namespaces joined by a veth pair, each with one private address
/// (10.231.x.1 and 10.231.x.2/24, inside the namespaces only; the machine's own network is untouched). `mpirun`
/// started in the first namespace reaches the second over TCP exactly as it reaches another machine, through a
/// launch agent that stands in for ssh: it runs the remote daemon inside the namespace named by the host address.
///
/// Needs root (`ip netns add`); `remove()` (also called on deinit) deletes the namespaces and with them the veth pair.
public final class NetworkNamespaces {
    /// The namespaces' names, one per host.
    public let names: [String]
    /// Each host's address, the names `mpirun --host` is given.
    public let addresses: [String]
    /// The subnet of both addresses, for Open MPI's `btl_tcp_if_include` and `oob_tcp_if_include`.
    public let subnet: String
    /// The script `mpirun` runs in place of ssh (`plm_rsh_agent`): `agent HOST COMMAND…` runs COMMAND in HOST's namespace.
    public let agent: URL
    private let interfaces: [String]
    private var removed = false

    /// Thrown when the namespaces cannot be made here (not root, or `ip` missing or refused).
    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Creates the two namespaces and the veth pair between them; the launch agent is written into `folder`.
    public init(in folder: URL) throws {
        guard getuid() == 0 else { throw Unavailable(description: "network namespaces need root (ip netns add)") }
        let tag = "\(getpid() % 100_000)\(UInt32.random(in: 0..<1000))"
        names = ["collie-\(tag)-a", "collie-\(tag)-b"]
        interfaces = ["cv\(tag)a", "cv\(tag)b"]  // at most 15 characters
        let octet = 1 + Int(getpid() % 250)
        subnet = "10.231.\(octet).0/24"
        addresses = ["10.231.\(octet).1", "10.231.\(octet).2"]
        agent = folder.appendingPathComponent("netns-agent.sh")
        try Self.ip(["netns", "add", names[0]])
        do {
            try Self.ip(["netns", "add", names[1]])
            try Self.ip(["link", "add", interfaces[0], "type", "veth", "peer", "name", interfaces[1]])
            for host in 0..<2 {
                try Self.ip(["link", "set", interfaces[host], "netns", names[host]])
                try Self.ip(["-n", names[host], "addr", "add", "\(addresses[host])/24", "dev", interfaces[host]])
                try Self.ip(["-n", names[host], "link", "set", "lo", "up"])
                try Self.ip(["-n", names[host], "link", "set", interfaces[host], "up"])
            }
            let cases = (0..<2).map { "  \(addresses[$0])) namespace=\(names[$0]) ;;" }.joined(separator: "\n")
            try """
                #!/bin/sh
                # Stands in for ssh: runs the command mpirun gives in the network namespace of the host it names.
                host="$1"; shift
                case "$host" in
                \(cases)
                  *) echo "netns-agent: unknown host $host" >&2; exit 1 ;;
                esac
                exec ip netns exec "$namespace" sh -c "$*"

                """.write(to: agent, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: agent.path)
        } catch {
            remove()
            throw error
        }
    }

    deinit { remove() }

    /// Deletes both namespaces (the veth pair goes with them).
    public func remove() {
        guard !removed else { return }
        removed = true
        for name in names { try? Self.ip(["netns", "delete", name]) }
    }

    /// The bytes host `index`'s end of the veth pair has received: what crossed the "network" from the other host.
    public func bytesReceived(byHost index: Int) throws -> Int {
        let text = try Self.ip(["netns", "exec", names[index], "cat", "/sys/class/net/\(interfaces[index])/statistics/rx_bytes"])
        guard let bytes = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw Unavailable(description: "cannot read the received bytes of \(interfaces[index]): \(text)")
        }
        return bytes
    }

    /// Runs `mpirun` inside the first namespace with one process on each host, TCP only (no shared memory
    /// between the "hosts"), single-threaded ranks as `MPIRun.run`, `program arguments` in `folder`.
    public func mpirun(_ program: URL, _ arguments: [String], in folder: URL,
                       timeout: TimeInterval = ChildProcess.defaultTimeout) throws -> ChildProcess.Result {
        var launch = ["netns", "exec", names[0], try MPIRun.launcher().path, "-np", "2", "--allow-run-as-root",
                      "--host", addresses.map { "\($0):1" }.joined(separator: ","),
                      "--mca", "plm_rsh_agent", agent.path, "--mca", "btl", "tcp,self",
                      "--mca", "btl_tcp_if_include", subnet, "--mca", "oob_tcp_if_include", subnet]
        let variables = ChildProcess.singleThreaded
        for name in variables.keys.sorted() { launch += ["-x", name] }
        return try ChildProcess.run(Self.ipTool, launch + [program.path] + arguments, in: folder,
                                    log: "netns-\(UUID().uuidString)", environment: variables, mergingErrors: true,
                                    timeout: timeout)
    }

    private static let ipTool: URL = {
        for path in ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"] where FileManager.default.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: "/usr/sbin/ip")
    }()

    /// Runs `ip arguments`, returning its output; throws `Unavailable` with its error output when it fails.
    @discardableResult
    private static func ip(_ arguments: [String]) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: ipTool.path) else {
            throw Unavailable(description: "`ip` (iproute2) is not installed: scripts/setup.sh installs it")
        }
        let process = Process()
        process.executableURL = ipTool
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Unavailable(description: "`ip \(arguments.joined(separator: " "))` failed: \(message)")
        }
        return text
    }
}
