//! The machine a run measured: CPU, cores, memory, toolchain, commit, date, and the load other
//! processes put on it (the figures of a busy machine are slower, and the report says so).

use std::path::Path;
use std::process::Command;

use chrono::Utc;
use serde::Serialize;

/// Facts about the machine and the code measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` of the first CPU.
    pub cpu: String,
    /// Logical CPUs available to the process.
    pub cores: usize,
    /// Physical memory (GiB).
    pub memory_gib: f64,
    /// `rustc --version`.
    pub rustc: String,
    /// The kernel (`uname -r`).
    pub kernel: String,
    /// `git rev-parse HEAD`, with `+dirty` when the work tree differs.
    pub commit: String,
    /// When the run started (UTC, RFC 3339).
    pub date: String,
}

fn command_output(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

impl Machine {
    /// Reads the facts (unknown ones read `unknown`).
    pub fn read(workspace: &Path) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|rest| {
                        rest.trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<f64>()
                            .ok()
                    })
            })
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
        let commit = command_output("git", &["rev-parse", "HEAD"], workspace)
            .map(|head| {
                let dirty = command_output("git", &["status", "--porcelain"], workspace)
                    .is_some_and(|s| !s.is_empty());
                if dirty { format!("{head}+dirty") } else { head }
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib,
            rustc: command_output("rustc", &["--version"], workspace)
                .unwrap_or_else(|| "unknown".into()),
            kernel: command_output("uname", &["-r"], workspace).unwrap_or_else(|| "unknown".into()),
            commit,
            date: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// The 1-minute load average and the number of compiler processes running now.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Load {
    /// `/proc/loadavg`'s first figure.
    pub load_1m: f64,
    /// `rustc`, `clippy-driver`, `cc` and `ld` processes of anyone (builds running beside the benchmark).
    pub compilers: usize,
}

impl Load {
    /// A reading now.
    pub fn now() -> Self {
        let load_1m = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0);
        let compilers = std::fs::read_dir("/proc")
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                    .filter(|comm| {
                        matches!(
                            comm.trim(),
                            "rustc" | "cargo" | "clippy-driver" | "cc" | "ld"
                        )
                    })
                    .count()
            })
            .unwrap_or(0);
        Self { load_1m, compilers }
    }
}
