//! `shardline-header-gen FFI_CRATE_DIR OUTPUT`: writes the C header for the
//! crate in FFI_CRATE_DIR, configured by its `cbindgen.toml`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [crate_dir, output] = args.as_slice() else {
        eprintln!("usage: shardline-header-gen FFI_CRATE_DIR OUTPUT");
        return ExitCode::from(2);
    };
    let crate_dir = PathBuf::from(crate_dir);
    let config = match cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot read cbindgen.toml: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(output);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cbindgen failed: {e}");
            ExitCode::FAILURE
        }
    }
}
