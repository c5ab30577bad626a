//! How a subcommand fails, and the exit code each kind of failure gives.

/// A subcommand's failure. `Display` prints the whole cause chain on one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The operator's input is wrong (a file missing or invalid): exit code 2, and nothing was changed.
    #[error("{0:#}")]
    Input(anyhow::Error),
    /// Something failed while working (AWS refused or was unreachable): exit code 1.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl CliError {
    /// The process exit code: 2 for bad input (as for bad arguments), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Input(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}
