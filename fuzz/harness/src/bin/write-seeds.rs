//! Writes the seed inputs of every fuzz target into `fuzz/seeds/<target>/`: the genuine tokens signed with
//! the harness's fixed keys (so the deep paths are reached at once) and the shapes each parser must refuse.
//! `fuzz/run.sh` runs it before fuzzing; the files are committed so `tests/corpus.rs` replays them.

use std::fs;
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../seeds");
    for (target, inputs) in tessera_fuzz::seeds() {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        for (index, input) in inputs.iter().enumerate() {
            fs::write(dir.join(format!("seed-{index:03}")), input)?;
        }
        eprintln!("{target}: {} seeds", inputs.len());
    }
    Ok(())
}
