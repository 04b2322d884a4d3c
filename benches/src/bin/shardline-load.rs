//! The load harness with the system allocator (glibc malloc on Linux):
//! what an application that does not choose an allocator gets. See
//! `benches/src/load.rs`.

#[path = "../load.rs"]
mod load;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    load::main("system")
}
