//! Python bindings for Shardline (filled in by the Python issue).
