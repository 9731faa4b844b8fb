"""Model profiles: `tiny` components built from configs in code (random weights, offline, CPU) and the
`full` checkpoints loaded from disk with `local_files_only`. Loading lives here, never in a pipeline."""
