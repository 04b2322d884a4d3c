//! The Shardline emulator (filled in by the emulator issue).
