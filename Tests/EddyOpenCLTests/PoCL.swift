import EddyTestSupport
import Foundation
import Testing
@testable import Eddy
@testable import EddyOpenCL

/// The PoCL device (OpenCL on this machine's CPU), found once. PoCL's kernel cache goes inside the build folder:
/// Scripts/test.sh exports POCL_CACHE_DIR; a test run on its own gets `<scratch>/pocl-cache` before OpenCL starts.
enum PoCL {
    static var binaryFolder: String { testBinaryFolder }

    static let device: OpenCLDevice? = {
        if getenv("POCL_CACHE_DIR") == nil {
            let dir = URL(fileURLWithPath: binaryFolder).deletingLastPathComponent().deletingLastPathComponent().path + "/pocl-cache"
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            setenv("POCL_CACHE_DIR", dir, 1)
        }
        return (try? OpenCLDevices.all())?.first { $0.isPoCL }
    }()

    static var available: Bool { device != nil }
    static let skipNote: Comment = "PoCL is not installed (apt-get install pocl-opencl-icd, or bash Scripts/setup.sh): OpenCL parity tests skipped"

    /// Scripts/test.sh installs PoCL and sets EDDY_REQUIRE_POCL=1: there, a missing PoCL is a failure, not a skip.
    static var required: Bool { getenv("EDDY_REQUIRE_POCL").map { String(cString: $0) == "1" } ?? false }
}

@Suite("PoCL presence")
struct PoCLPresence {
    @Test func poclIsPresentWhereRequired() {
        if PoCL.required { #expect(PoCL.available, "EDDY_REQUIRE_POCL=1 but no PoCL device: the OpenCL tests would be skipped") }
        if !PoCL.available { print("note: \(PoCL.skipNote)") }
    }
}

