//! Helpers for integration tests: starting local servers on free loopback ports.
