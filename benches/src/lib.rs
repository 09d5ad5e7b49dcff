//! Benchmarks that cross crates; see `benches/benches/` and BENCHMARKS.md.
