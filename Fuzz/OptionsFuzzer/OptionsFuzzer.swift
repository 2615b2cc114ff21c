// libFuzzer harness for the checks every training and sweep option goes through (`TrainingConfig.validate`,
// `SweepConfig.validate`, `MemoryBudget.checkTraining`): sizes, counts and reals decoded from the input bytes,
// including negatives, zero, NaN, infinities and values near Int.max. They must throw EddyError or pass, never trap.
import Eddy

struct Bytes {
    var data: [UInt8]
    var at = 0
    mutating func int() -> Int {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(at + i < data.count ? data[at + i] : 0) << (8 * UInt64(i)) }
        at += 8
        // Mostly small values, sometimes extreme ones.
        switch v & 3 {
        case 0: return Int(truncatingIfNeeded: v >> 2) % 5000 - 10
        case 1: return Int(truncatingIfNeeded: v)
        default: return Int(truncatingIfNeeded: v >> 40)
        }
    }
    mutating func real() -> Double {
        let i = int()
        switch i & 7 {
        case 0: return .nan
        case 1: return .infinity
        case 2: return -.infinity
        default: return Double(i) * 1e-12
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOptions(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var b = Bytes(data: data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    var t = TrainingConfig(data: DataSpec(path: "fuzz.csv"))
    t.width = b.int(); t.delays = b.int(); t.ridge = b.real(); t.rcond = b.real(); t.chunkRows = b.int(); t.swimPool = b.int()
    t.randomScale = b.real(); t.pca = b.int(); t.dt = b.real()
    do { try t.validate() } catch is EddyError {} catch { fatalError("not an EddyError: \(error)") }
    do {
        try MemoryBudget.checkTraining(variables: max(1, b.int()), delays: max(1, b.int()), width: max(0, b.int()), inputs: max(0, b.int()),
                                       form: b.int() & 1 == 0 ? .koopman : .recurrent, solver: .qr, chunkRows: max(2, b.int()),
                                       pairs: max(0, b.int()))
    } catch is EddyError {} catch { fatalError("not an EddyError: \(error)") }
    var s = SweepConfig(data: DataSpec(path: "fuzz.csv"), validation: .fraction(b.real()), widths: [b.int(), b.int()],
                        ridges: [b.real(), b.real()], horizon: b.int())
    s.delays = [b.int()]
    s.rconds = [b.real()]
    s.originStride = b.int()
    s.scales = [b.real(), b.real()]
    s.scoreSteps = [b.int()]
    s.sampleWidth = b.int()
    do { try s.validate() } catch is EddyError {} catch { fatalError("not an EddyError: \(error)") }
    return 0
}
