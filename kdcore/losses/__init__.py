"""Loss terms: pure functions, one file per knowledge type."""
