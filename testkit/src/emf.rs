//! The EMF metric lines a handler writes to the process's real stdout, which the test harness does not
//! capture in-process: one ignored test of the current test binary runs in a child process and its
//! stdout is read back.

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Runs the ignored test `name` of the current test binary in a child process and returns the JSON
/// objects of its stdout lines (the first shares its line with the harness's `test <name> ... `).
pub fn lines_of_child_test(name: &str) -> anyhow::Result<Vec<Value>> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .with_context(|| format!("running the child test {name}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "child {name} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout
        .lines()
        .filter_map(|l| {
            l.find('{')
                .and_then(|at| serde_json::from_str(&l[at..]).ok())
        })
        .collect())
}
