/// Which modes of the lifted model a design keeps (Eddy-LQR: `auto`; Eddy-MPC: `all`).
public enum LiftedModes: String, CaseIterable, Sendable {
    /// `stable` for a Koopman model with features, `all` otherwise (see `ErrorModel`).
    case auto
    /// The invariant subspace of the eigenvalues inside the unit circle.
    case stable
    /// Every lifted coordinate.
    case all
}

/// The model the Eddy controllers are designed on: the lifted model in error coordinates about the reference,
/// restricted to the modes the design keeps,
///
///     ζ = Vᵀ (s − s*),    ζ⁺ = T ζ + Vᵀ B (u − u*),    cost ζᵀ (VᵀQV) ζ + (u − u*)ᵀ R (u − u*),
///
/// where the feed-forward `u*` carries the lifted model from `s*` to `s*⁺` as closely as it can (what it leaves over
/// is model error, which the feedback corrects; see `LiftedMPC`).
///
/// Why restrict: a Koopman model with features has growing modes (`|λ| > 1`) that are EDMD artefacts of directions
/// in feature space the data barely constrain, and the input cannot reach them (PBH measure `|wᴴB|/‖w‖‖B‖` ~1e-4
/// on the pendulum, against ~1e-5…1e-3 for the other modes, so it does not single them out). The Riccati equation of
/// the whole lifted model then has no stabilising solution, or one with a huge gain (19 000 on ω for one pendulum
/// model), and either design is useless. The infinite-horizon LQR is therefore designed on the stable invariant
/// subspace of `A` (real Schur form reordered by LAPACK `dtrsen`: `A V = V T`, `T` the block of the eigenvalues
/// inside the unit circle), taking the coordinates of the dropped modes (`V⊥ᵀ(s − s*)`) as zero. That is an
/// assumption — that the learned model's predictive content near the reference lies in its stable modes — and it is
/// the weak point of Eddy-LQR: it held for 13 of 14 pendulum models in a sweep (widths 40–200, ridges 1e-8/1e-6)
/// and failed for one, whose upright dynamics sat in dropped modes. Eddy-MPC keeps every mode and trusts the model
/// only over its horizon (`LiftedMPC`). With no features (width 0) or for a recurrent model's linearisation every
/// mode is the state's own, so `auto` drops nothing there.
public struct ErrorModel: Sendable {
    /// `V` (N × k), orthonormal columns; nil when every coordinate is kept (`V = I`).
    public let basis: DenseMatrix?
    public let a: DenseMatrix
    public let b: DenseMatrix
    public let q: DenseMatrix
    public let r: DenseMatrix
    public let modes: LiftedModes
    public let droppedModes: Int

    public var stateSize: Int { a.rows }

    public init(model: LiftedLinearModel, weights: ControlWeights, modes requested: LiftedModes) throws {
        try weights.validate(variables: model.variables, inputs: model.inputs)
        let (q, r) = model.costMatrices(weights)
        let modes: LiftedModes
        switch requested {
        case .auto: modes = model.model.metadata.form == .koopman && model.model.layout.width > 0 ? .stable : .all
        default: modes = requested
        }
        self.r = r
        self.modes = modes
        let n = model.stateSize
        if modes == .stable, let (v, t) = try Self.stableSubspace(model.a), v.columns < n {
            basis = v
            a = t
            b = DenseMatrix.transposedProduct(v, model.b)
            self.q = DenseMatrix.transposedProduct(v, q * v).symmetrised
            droppedModes = n - v.columns
        } else {
            basis = nil
            a = model.a
            b = model.b
            self.q = q
            droppedModes = 0
        }
    }

    /// `Vᵀ e` (or `e` when every coordinate is kept).
    public func coordinates(_ e: [Double]) -> [Double] {
        guard let basis else { return e }
        return DenseMatrix.transposedProduct(basis, .column(e)).values
    }

    /// `V` and `T = Vᵀ A V` for the eigenvalues strictly inside the unit circle; nil when there are none.
    static func stableSubspace(_ a: DenseMatrix) throws -> (DenseMatrix, DenseMatrix)? {
        let n = a.rows
        var t = a.values
        let schur = LAPACK.gees(&t, n: n)
        guard schur.info == 0 else { throw EddyError("the real Schur form of the lifted model failed (LAPACK dgees info \(schur.info))") }
        let select = (0..<n).map { schur.real[$0] * schur.real[$0] + schur.imaginary[$0] * schur.imaginary[$0] < 1 }
        guard select.contains(true) else { return nil }
        var z = schur.vectors
        let (kept, info) = LAPACK.trsen(select: select, &t, &z, n: n)
        // info 1: a swap was refused as too ill-conditioned; the ordering is then incomplete, so keep everything.
        guard info == 0 else { return nil }
        let full = DenseMatrix(rows: n, columns: n, values: t), vectors = DenseMatrix(rows: n, columns: n, values: z)
        return (vectors.block(rows: 0..<n, columns: 0..<kept), full.block(rows: 0..<kept, columns: 0..<kept))
    }
}
