//! Shared helpers for Shardline benchmarks.
