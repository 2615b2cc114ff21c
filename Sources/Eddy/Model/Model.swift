/// Everything a model file records about how a model was made (the JSON metadata of the model file).
public struct ModelMetadata: Codable, Sendable, Equatable {
    /// Version 2 added the EOF reduction (`reduction`, tensors `eof_*`); version 3 the `qr` solver and its record
    /// (`dropped`, `residual`, `rowsCondition`); version 4 the checksum (`__metadata__.eddy_checksum`, see
    /// `ModelFile`); version 5 SWIM's keyed pool (a bottom-k sample keyed by a hash of the seed and each pair's place
    /// in the data, so any split over processes keeps the same pairs; version 4's Algorithm R drew another sample from
    /// the same seed) and statistics folded by blocks. Every file is written as the current version; versions 1–4
    /// are still read.
    public static let currentFormatVersion = 5
    public var format = "eddy-model"
    /// The format version of the file the model was read from; a new model's is the current version, which
    /// `ModelFile.write` writes.
    public var formatVersion = ModelMetadata.currentFormatVersion
    public var eddyVersion = Eddy.version
    public var variables: [String]
    public var inputs: [String]
    public var delays: Int
    public var width: Int
    public var form: Form
    public var sampler: SamplerKind
    public var activation: Activation
    public var seed: UInt64
    /// Standard deviation of random-feature weights (random sampler only).
    public var randomScale: Double?
    /// Size of SWIM's candidate pool (a uniform reservoir of training pairs).
    public var swimPool: Int?
    public var dt: Double
    public var solver: SolverKind
    /// The relative ridge α; the absolute one is `lambda = α · trace(G) / (D + m)`.
    public var ridge: Double
    public var lambda: Double
    public var rcond: Double?
    /// Condition number of `G + λI` (nil when infinite); for `qr`, of the feature rows `Φ`.
    public var condition: Double?
    /// `qr` (format 3): directions below the cut-off, the residual RMS per pair and target (standardised), and the
    /// condition number of `Φ` (σ_max/σ_min; absent when infinite).
    public var dropped: Int?
    public var residual: Double?
    public var rowsCondition: Double?
    public var training: TrainingData
    /// How `eddy sweep` chose this model (absent for `eddy train`).
    public var sweep: SweepRecord?
    /// How raw data become the model's variables and inputs (time column, angles, calendar, gap filling, pivot);
    /// forecasting and evaluation read new data the same way. Absent: the columns are the variables and inputs.
    public var shaping: Shaping?
    /// Per variable, the smallest and largest value seen in training (data units): forecasts far outside are flagged.
    public var trainingRange: [[Double]]?
    /// Mean of each variable by phase of the daily cycle (hour of day for hourly data) over the training data, from
    /// the time column: the climatology baseline. `climatologyPeriod` phases of `dt` each.
    public var climatologyPeriod: Int?
    /// The state is the leading EOFs of the variables (`--pca K`): the model runs on `components` principal
    /// components and maps forecasts back to the variables (tensors `eof_*`).
    public var reduction: ReductionRecord?
    /// Units of the variables (NAME → unit, e.g. temp → °F) as `train --units` gave them, for plot axes; nil: none given.
    public var units: [String: String]? = nil

    public struct ReductionRecord: Codable, Sendable, Equatable {
        public var components: Int
        /// Variance of each component and of the whole scaled state (see `EOFBasis`).
        public var componentVariance: [Double]
        public var totalVariance: Double
        /// Fraction of the scaled variance the components keep.
        public var explained: Double
        public var scaling: String
    }

    public struct Shaping: Codable, Sendable, Equatable {
        /// The raw variable columns as named (nil: the default selection).
        public var columns: [String]?
        public var inputs: [String]
        public var timeColumn: String?
        public var angles: [String]
        public var calendar: [CalendarFeature]
        public var fillGaps: Int
        public var pivot: String?
        public var dt: Double?
        /// The time column holds dates (ISO 8601): forecasts write their times as dates too.
        public var timesAreDates: Bool?
        /// NetCDF selections (`--nc-variables`, `--nc-levels`, `--nc-box` as latMin, latMax, lonMin, lonMax).
        public var ncVariables: [String]?
        public var ncLevels: [Int]?
        public var ncBox: [Double]?
        /// `--nc-time`: the NetCDF time dimension or variable named when training.
        public var ncTime: String?
        /// `--nc-months`: times stepped by calendar month.
        public var ncMonths: Bool?
        /// The time column's date format (`--time-format`); nil: ISO 8601 and its slash and space forms.
        public var timeFormat: String?
    }

    public struct SweepRecord: Codable, Sendable, Equatable {
        public var validation: String
        /// Mean standardised MSE over `scoreSteps` on the validation origins (nil when not finite).
        public var score: Double?
        /// The steps the score averages; nil (not stored) for every step 1…horizon, the default (files written
        /// before listed all of them, 1…500, and still read).
        public var scoreSteps: [Int]?
        public var horizon: Int
        public var widths: [Int]
        public var ridges: [Double]
        public var forms: [Form]
        public var samplers: [SamplerKind]
        public var seeds: [UInt64]
        public var delays: [Int]
        public var candidates: Int
        /// The numbers of principal components tried (`--pca`), nil without a reduction.
        public var pca: [Int]? = nil
        /// `--solver qr`: the cut-offs tried.
        public var rconds: [Double]? = nil
        /// What the written weights were solved from: "training part" (scored as is) or "training and validation
        /// parts" (refitted on all the data after the choice: the merge of both parts' pass states).
        public var weightsFrom: String? = nil
    }

    public struct TrainingData: Codable, Sendable, Equatable {
        public var path: String
        public var episodeColumn: String?
        public var rows: Int
        public var segments: Int
        public var pairs: Int
        /// FNV-1a (64 bit) over the values and segment boundaries in stream order.
        public var fingerprint: String
    }
}

extension ModelMetadata {
    /// Records what a solve reports beyond the weights (the `qr` fields stay absent for the Gram solvers).
    public mutating func record(_ solution: Solution) {
        guard solver == .qr else { return }
        rcond = solution.rcond
        dropped = solution.dropped
        residual = solution.residual.flatMap { $0.isFinite ? $0 : nil }
        rowsCondition = solution.rowsCondition.flatMap { $0.isFinite ? $0 : nil }
        condition = rowsCondition
    }
}

public enum Eddy {
    public static let version = "0.1.0"
}

/// A trained model: the hidden layer, the normalisation and the outer weights of one form
/// (METHOD.md, "Two recurrent forms"). `theta` is `(D + m) × targets`: `[K; B]` (Koopman) or `[A; B]` (recurrent).
public struct Model: Sendable {
    public var metadata: ModelMetadata
    public var layer: HiddenLayer
    public var normalisation: Normalisation
    public var theta: [Double]
    /// Mean of each variable by phase of the daily cycle (`climatologyPeriod × n`, data units), when known.
    public var climatology: [Double]?
    /// With `--pca`: the map between the variables and the components the model runs on.
    public var eof: EOFBasis?

    public init(metadata: ModelMetadata, layer: HiddenLayer, normalisation: Normalisation, theta: [Double], climatology: [Double]? = nil,
                eof: EOFBasis? = nil) {
        self.metadata = metadata
        self.layer = layer
        self.normalisation = normalisation
        self.theta = theta
        self.climatology = climatology
        self.eof = eof
    }

    /// The dictionary's shape: its state is the variables, or their leading components with `--pca`.
    public var layout: DictionaryLayout {
        DictionaryLayout(variables: metadata.reduction?.components ?? metadata.variables.count, delays: metadata.delays,
                         width: metadata.width, inputs: metadata.inputs.count, form: metadata.form)
    }

    /// Variables the model reads and forecasts, in data units (the columns, also with `--pca`).
    public var outputCount: Int { metadata.variables.count }

    /// Each variable's training standard deviation, the unit of standardised errors (1 for a constant one, as the
    /// normalisation does).
    public var outputStd: [Double] { eof.map { $0.columnStd.map { $0 > 0 && $0.isFinite ? $0 : 1 } } ?? normalisation.variableStd }

    /// The standardised state of one row of variables (data units): `(x − mean)/std`, or with `--pca` the
    /// standardised components.
    public func standardisedState(_ row: ArraySlice<Double>) -> [Double] {
        let norm = normalisation
        let x: [Double]
        if let eof {
            x = Array(row.prefix(eof.columns)).withUnsafeBufferPointer { eof.project($0, count: 1, stride: eof.columns) }
        } else {
            x = Array(row.prefix(norm.variableCount))
        }
        return (0..<norm.variableCount).map { (x[$0] - norm.variableMean[$0]) / norm.variableStd[$0] }
    }

    /// Rows of standardised state (`count × layout.variables`) in data units (`count × outputCount`).
    public func dataUnits(_ state: [Double], count: Int) -> [Double] {
        let norm = normalisation, k = norm.variableCount
        var out = state
        for idx in 0..<out.count {
            let i = idx % k
            out[idx] = out[idx] * norm.variableStd[i] + norm.variableMean[i]
        }
        return eof?.reconstruct(out, count: count) ?? out
    }

    /// The Koopman matrix `K` (D × D), the first D rows of `theta` (Koopman form only).
    public var koopmanMatrix: [Double]? {
        guard metadata.form == .koopman else { return nil }
        let d = layout.dictionarySize
        return Array(theta[0..<(d * d)])
    }

    /// Inputs the model computes itself from time (calendar features): the last `2 × calendar.count` inputs.
    public var calendar: [CalendarFeature] { metadata.shaping?.calendar ?? [] }

    /// Inputs that must come from data or a future-inputs file.
    public var externalInputs: [String] { Array(metadata.inputs.dropLast(2 * calendar.count)) }

    /// The readout `C` (D × n): the dictionary holds the state `z` in columns `1…n`, so `x_t = Ψ_t C` is that
    /// coordinate projection exactly (a least-squares `C` reproduces it up to the ridge).
    public var readout: [Double] {
        let d = layout.dictionarySize, n = layout.variables
        var c = [Double](repeating: 0, count: d * n)
        for i in 0..<n { c[(1 + i) * n + i] = 1 }
        return c
    }
}

extension DataSpec {
    /// The spec a model reads new data with (`eddy forecast`, `evaluate`): its recorded columns, inputs, episode column
    /// and shaping (time column, angles, calendar, gap filling, pivot, dt, the NetCDF selection); `columns`, `inputs`
    /// and `episodeColumn`, when given, replace the recorded ones.
    public static func reading(_ path: String, for model: Model, columns: [String]? = nil, inputs: [String]? = nil,
                               episodeColumn: String? = nil) -> DataSpec {
        let shaping = model.metadata.shaping
        // The model's variables are the columns themselves unless angles or a pivot renamed them.
        let renamed = shaping.map { $0.pivot != nil || !$0.angles.isEmpty } ?? false
        var s = DataSpec(path: path, columns: columns ?? shaping?.columns ?? (renamed ? nil : model.metadata.variables),
                         inputs: inputs ?? shaping?.inputs ?? model.metadata.inputs,
                         episodeColumn: episodeColumn ?? (shaping?.pivot == nil ? model.metadata.training.episodeColumn : nil))
        if let shaping {
            s.timeColumn = shaping.timeColumn
            s.angles = shaping.angles
            s.calendar = shaping.calendar
            s.fillGaps = shaping.fillGaps
            s.pivot = shaping.pivot
            s.dt = shaping.dt
            s.ncVariables = shaping.ncVariables ?? []
            s.ncLevels = shaping.ncLevels
            s.timeFormat = shaping.timeFormat
            if let b = shaping.ncBox, b.count == 4 { s.ncBox = (b[0], b[1], b[2], b[3]) }
            s.ncTime = shaping.ncTime
            s.ncMonths = shaping.ncMonths ?? false
        }
        return s
    }
}
