#![allow(clippy::unwrap_used)]
//! `assets/demo-seed.json` is the default generated dataset. To rewrite it after changing the
//! generator: `DUPDESK_WRITE_DEMO_SEED=1 cargo test --test demo_seed`.

use dupdesk::harness::demo::{DemoOptions, default_seed, generate, to_seed_json};

#[test]
fn the_committed_seed_is_the_default_dataset() {
    let generated = generate(&DemoOptions::default()).data;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-seed.json");
    if std::env::var_os("DUPDESK_WRITE_DEMO_SEED").is_some() {
        std::fs::write(&path, to_seed_json(&generated).unwrap()).unwrap();
        return;
    }
    let committed = default_seed().unwrap();
    assert!(
        generated == committed,
        "assets/demo-seed.json is out of date: run DUPDESK_WRITE_DEMO_SEED=1 cargo test --test demo_seed"
    );
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 1_000_000, "the seed file is {size} bytes");
}
