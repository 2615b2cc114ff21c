import Dispatch
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The dictionary on the CPU (METHOD.md, "Dictionary"): rows `[1, z, φ(z), u]` for a batch of windows.
/// `φ` is one matrix product (OpenBLAS) followed by the activation, applied in parallel over rows.
public enum Lift {
    /// Writes `count` rows of `layout.featureCount` values into `out`.
    public static func rows(windows: UnsafePointer<Double>, inputs: UnsafePointer<Double>?, count: Int,
                            layer: HiddenLayer, layout: DictionaryLayout, into out: UnsafeMutablePointer<Double>) {
        let p = layout.windowSize, m = layout.inputs, mw = layer.width, f = layout.featureCount
        for r in 0..<count {
            let row = out + r * f
            row[0] = 1
            (row + 1).update(from: windows + r * p, count: p)
            if m > 0, let inputs { (row + 1 + p + mw).update(from: inputs + r * m, count: m) }
        }
        guard mw > 0 else { return }
        layer.weights.withUnsafeBufferPointer { w in
            BLAS.gemm(transA: false, transB: false, m: count, n: mw, k: p, a: windows, lda: p, b: w.baseAddress!, ldb: mw,
                      beta: 0, c: out + 1 + p, ldc: f)
        }
        let hidden = UnsafeMutableSendablePointer(out + 1 + p)
        let stripes = min(count, max(1, ProcessInfoLite.activeProcessorCount * 2))
        layer.biases.withUnsafeBufferPointer { bp in
            let biases = UnsafeSendablePointer(bp.baseAddress!)
            let activation = layer.activation
            DispatchQueue.concurrentPerform(iterations: stripes) { s in
                let lo = count * s / stripes, hi = count * (s + 1) / stripes
                for r in lo..<hi {
                    let h = hidden.pointer + r * f
                    switch activation {
                    case .tanh: for j in 0..<mw { h[j] = tanh(h[j] + biases.pointer[j]) }
                    case .relu: for j in 0..<mw { h[j] = max(0, h[j] + biases.pointer[j]) }
                    }
                }
            }
        }
    }

    /// Convenience for arrays.
    public static func rows(windows: [Double], inputs: [Double], count: Int, layer: HiddenLayer, layout: DictionaryLayout) -> [Double] {
        var out = [Double](repeating: 0, count: count * layout.featureCount)
        windows.withUnsafeBufferPointer { w in
            inputs.withUnsafeBufferPointer { u in
                out.withUnsafeMutableBufferPointer {
                    rows(windows: w.baseAddress!, inputs: u.baseAddress, count: count, layer: layer, layout: layout, into: $0.baseAddress!)
                }
            }
        }
        return out
    }
}

/// Raw pointers handed to concurrent work over disjoint rows.
struct UnsafeMutableSendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Double>
    init(_ p: UnsafeMutablePointer<Double>) { pointer = p }
}

struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: UnsafePointer<Double>
    init(_ p: UnsafePointer<Double>) { pointer = p }
}

enum ProcessInfoLite {
    static var activeProcessorCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}
