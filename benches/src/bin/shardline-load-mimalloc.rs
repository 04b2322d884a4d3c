//! The load harness with mimalloc as the global allocator. Records are
//! allocated on the sending thread and freed on the producer's dispatcher
//! thread, a pattern glibc malloc handles poorly (its slow path and arena
//! locks were ~20% of the profile); an application that sets mimalloc gets
//! these figures. See `benches/src/load.rs`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../load.rs"]
mod load;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    load::main("mimalloc")
}
