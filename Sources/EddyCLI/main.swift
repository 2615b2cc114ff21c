import EddyCommands

// The `eddy` executable: every command lives in EddyCommands, shared with `eddy-mpi`.
EddyCommand.main()
