//! Replays every committed seed and corpus entry of every fuzz target on stable Rust: what the fuzzer
//! once found (and what the seeds pin down) keeps being checked by a plain `cargo test`.

use std::fs;
use std::path::PathBuf;

#[test]
fn every_seed_and_corpus_entry_holds_the_properties() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut replayed = 0;
    for (name, target) in tessera_fuzz::TARGETS {
        let mut inputs = 0;
        for folder in ["seeds", "corpus"] {
            let dir = root.join(folder).join(name);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(
                    outcome.is_ok(),
                    "{name}: {} broke a property",
                    path.display()
                );
                inputs += 1;
            }
        }
        assert!(
            inputs > 0,
            "the {name} target has no seeds in fuzz/seeds/{name}"
        );
        replayed += inputs;
    }
    eprintln!("replayed {replayed} inputs");
}

#[test]
fn the_genuine_inputs_reach_the_deep_paths() {
    tessera_fuzz::check_fixtures();
}
