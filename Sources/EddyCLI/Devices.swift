import ArgumentParser
import Eddy

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the compute backends this eddy can use and which one --backend auto takes."
    )

    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let backend = CPUBackend()
        let (_, reason) = Backends.make(.auto)
        if json {
            print(JSON.object([
                "backends": .array([.object(["name": .string(backend.name), "details": .string(backend.details), "available": .bool(true)])]),
                "auto": .string(reason),
            ]).text)
        } else {
            print("backends:")
            print("  cpu     \(backend.details)")
            print("auto → \(reason)")
        }
    }
}
