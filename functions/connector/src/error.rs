//! How a subcommand fails, and the exit code each kind of failure gives.

use shared::error::with_causes;

/// A subcommand's failure. `Display` prints the whole cause chain on one line, each text once.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The operator's input is wrong (a file missing or invalid): exit code 2, and nothing was changed.
    #[error("{}", with_causes(.0.as_ref()))]
    Input(anyhow::Error),
    /// Something failed while working (AWS refused or was unreachable): exit code 1.
    #[error("{}", with_causes(.0.as_ref()))]
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

#[cfg(test)]
mod tests {
    use shared::polar::PolarError;

    use super::*;

    #[test]
    fn a_cause_the_message_already_shows_is_printed_once() {
        let transport = PolarError::Transport {
            message: "connection reset".to_owned(),
            source: Some(Box::new(std::io::Error::other("connection reset"))),
        };
        let error = CliError::from(anyhow::Error::new(transport).context("listing webhooks"));
        assert_eq!(
            error.to_string(),
            "listing webhooks: Polar could not be reached: connection reset"
        );
    }
}
