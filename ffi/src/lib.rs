//! C ABI for Shardline (filled in by the C ABI issue).
