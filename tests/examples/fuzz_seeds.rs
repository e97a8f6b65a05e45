//! Writes the fuzz seed inputs (`tests::fuzz_bodies::seeds`) into a corpus root, one directory
//! per target: `cargo run -p tests --example fuzz_seeds -- fuzz/corpus`. Existing files are
//! kept; a seed is rewritten under its own name.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fuzz/corpus"));
    for seed in tests::fuzz_bodies::seeds::all() {
        let dir = root.join(seed.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&seed.name), &seed.data)?;
        println!("{}/{} ({} bytes)", seed.target, seed.name, seed.data.len());
    }
    Ok(())
}
