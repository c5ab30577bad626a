//! The suite-wide log scan (`scripts/scan-test-logs.sh`, run by `make test` after every test) catches a
//! leak: planted secrets (raw, percent-encoded, in a function's own log beside its `secrets.json`) fail
//! it, naming the file and line and printing the line masked; clean logs pass.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/scan-test-logs.sh")
}

fn scan(dir: &Path) -> (i32, String, String) {
    let output = Command::new("bash")
        .arg(script())
        .arg(dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_log_scan_fails_on_a_planted_secret_and_passes_clean_logs() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path();
    let token = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let key = "kM3+q/9xZt==";
    write(
        &target.join("test-logs/sync-1.secrets"),
        &format!(
            "{}\n{}\n\"short\"\n",
            serde_json::json!(token),
            serde_json::json!(key)
        ),
    );
    let clean = r#"{"level":"INFO","message":"sync finished","athlete":"a-1"}"#;
    write(
        &target.join("test-logs/sync-1.jsonl"),
        &format!("{clean}\n{clean}\n"),
    );
    // A function binary's log beside the secret JSON the local runner gave it.
    write(
        &target.join("test-artifacts/stack/secrets.json"),
        r#"{"polar_client_id":"client","smartabase_password":"local-stack-password-1"}"#,
    );
    write(
        &target.join("test-artifacts/stack/functions.log"),
        &format!("{clean}\n"),
    );

    let (code, stdout, stderr) = scan(target);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("none holds any of 3 secrets"), "{stdout}");

    // Leaks: a token in a message, a key percent-encoded in a URL, the stack's password in its log.
    write(
        &target.join("test-logs/webhook-2.jsonl"),
        &format!(
            "{clean}\n{{\"message\":\"token {token} refused\"}}\n{{\"url\":\"/cb?k={}\"}}\n",
            "kM3%2Bq%2F9xZt%3D%3D"
        ),
    );
    write(
        &target.join("test-artifacts/stack/functions.log"),
        &format!("{clean}\n{{\"error\":\"login local-stack-password-1 refused\"}}\n"),
    );
    let (code, _, stderr) = scan(target);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("3 log line(s)"), "{stderr}");
    assert!(stderr.contains("test-logs/webhook-2.jsonl:2"), "{stderr}");
    assert!(stderr.contains("test-logs/webhook-2.jsonl:3"), "{stderr}");
    assert!(
        stderr.contains("test-artifacts/stack/functions.log:2"),
        "{stderr}"
    );
    assert!(stderr.contains("token [SECRET] refused"), "{stderr}");
    for secret in [token, key, "kM3%2Bq%2F9xZt%3D%3D", "local-stack-password-1"] {
        assert!(
            !stderr.contains(secret),
            "the report shows a secret: {stderr}"
        );
    }

    // Nothing to scan is an error, not a pass.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = scan(empty.path());
    assert_ne!(code, 0);
    assert!(stderr.contains("nothing to scan"), "{stderr}");
}
