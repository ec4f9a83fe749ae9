//! Fixture access shared by the engine's test files.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository's `fixtures/maple/`, or `$MAPLE_SHARED_DATA` (same layout) when set.
pub fn fixture_dir() -> PathBuf {
    match std::env::var_os("MAPLE_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/maple"),
    }
}

/// A fixture's bytes; panics naming the path.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// A fixture as text; panics naming the path.
pub fn fixture_text(name: &str) -> String {
    let path = fixture_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
