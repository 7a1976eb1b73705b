//! The WIT of golem:api, golem:rpc and WASI in wit/deps is the golem-rust 1.2.1 crate's (from
//! crates.io), with only the spelling updates that scripts/sync-golem-wit makes.

use std::path::{Path, PathBuf};

fn golem_rust_wit() -> PathBuf {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let pkg = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "golem-rust")
        .expect("golem-rust is a dependency");
    assert_eq!(pkg["version"], "1.2.1", "the Golem 1.1 generation");
    Path::new(pkg["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .join("wit/deps")
}

/// The edits of scripts/sync-golem-wit, line by line.
fn respell(line: &str) -> String {
    let line = match line.strip_suffix(") -> ();") {
        Some(head) => format!("{head});"),
        None => line.to_string(),
    };
    line.replace("(float32)", "(f32)")
        .replace("(float64)", "(f64)")
}

#[test]
fn wit_deps_are_the_crates_own() {
    let crate_wit = golem_rust_wit();
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/deps");
    let mut compared = 0;
    for package in ["golem-1.1", "wasm-rpc", "clocks", "io"] {
        for entry in std::fs::read_dir(crate_wit.join(package)).unwrap() {
            let path = entry.unwrap().path();
            let original = std::fs::read_to_string(&path).unwrap();
            let copy = std::fs::read_to_string(ours.join(package).join(path.file_name().unwrap()))
                .unwrap_or_else(|e| {
                    panic!(
                        "{package}/{:?} is missing: run scripts/sync-golem-wit ({e})",
                        path.file_name()
                    )
                });
            let expected: Vec<String> = original.lines().map(respell).collect();
            let actual: Vec<&str> = copy.lines().collect();
            assert_eq!(
                actual,
                expected,
                "{} differs from the crate's",
                path.display()
            );
            compared += 1;
        }
    }
    assert!(compared >= 8, "{compared} files compared");
}
