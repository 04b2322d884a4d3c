//! `shardline-agent`: see the library's documentation (`src/lib.rs`) for
//! what it does and how.

use std::process::ExitCode;

fn main() -> ExitCode {
    shardline_agent::run_from_command_line()
}
