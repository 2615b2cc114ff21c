#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Eddy
import EddyCommands
import EddyMPI

// `eddy-mpi` (built only with EDDY_MPI=1): `eddy train` and `eddy sweep` as one job of MPI processes.

// The OpenCL probe runs this executable again as a child (`probe-opencl`); that child is no MPI process.
if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "probe-opencl" {
    EddyCommand.main()
}

let group: MPIGroup
do {
    group = try MPIGroup()
} catch let error as EddyError {
    printError("eddy-mpi: error: \(error.message)")
    exit(1)
}
Processes.install(group)

// Rank 0 prints and writes; every other rank writes nothing and prints only its own errors (on the stderr it was given).
var errors: Int32 = 2
if group.rank != 0 {
    errors = dup(2)
    let null = open("/dev/null", O_WRONLY)
    dup2(null, 1)
    dup2(null, 2)
    AtomicFile.discardWrites = true
}
CommandErrors.configure(prefix: group.size > 1 ? "eddy-mpi: rank \(group.rank) of \(group.size)" : "eddy-mpi", descriptor: errors,
                        delayMicroseconds: group.rank == 0 ? 0 : 300_000)

do {
    var command = try EddyMPICommand.parseAsRoot()
    try command.run()
} catch {
    let code = EddyMPICommand.exitCode(for: error)
    if code.isSuccess {
        // --help, --version: rank 0 prints (the others' stdout is closed).
        print(EddyMPICommand.fullMessage(for: error))
        group.finalize()
        exit(0)
    }
    if !(error is ExitCode) {
        // A usage error (ArgumentParser's message) or an unexpected one; EddyErrors were reported already.
        CommandErrors.report(EddyMPICommand.fullMessage(for: error))
    }
    // A failed rank ends the whole job: the others may be waiting for it in a collective.
    group.abort(code.rawValue)
}
group.finalize()
