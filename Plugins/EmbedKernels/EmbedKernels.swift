import Foundation
import PackagePlugin

/// Turns `Kernels/*.cl` (the single source of the OpenCL kernels) into Swift string literals compiled into the
/// target, so the binary never reads kernels from disk or depends on the working directory.
@main
struct EmbedKernels: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let folder = context.package.directoryURL.appending(path: "Kernels")
        let kernels = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "cl" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "KernelSources.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(kernels.count) OpenCL kernel file(s) into \(target.name)",
                executable: try context.tool(named: "KernelEmbedder").url,
                arguments: [output.path] + kernels.map(\.path),
                inputFiles: kernels,
                outputFiles: [output]
            ),
        ]
    }
}
