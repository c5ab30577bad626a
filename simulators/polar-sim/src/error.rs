//! Errors of the control operations (handle methods and `/_sim/` endpoints).

use axum::http::StatusCode;

/// Why a control operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No account with this Polar user id.
    #[error("unknown polar account {0}")]
    UnknownAccount(i64),
    /// An account with this Polar user id already exists.
    #[error("polar account {0} already exists")]
    AccountExists(i64),
    /// No record of this kind and key for the account.
    #[error("unknown {kind} record {key}")]
    UnknownRecord {
        /// Record kind (`exercise`, `activity`, `sleep`, `recharge`).
        kind: String,
        /// Exercise id or date.
        key: String,
    },
    /// The request itself is invalid.
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl SimError {
    /// HTTP status used by the control API for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownAccount(_) | Self::UnknownRecord { .. } => StatusCode::NOT_FOUND,
            Self::AccountExists(_) => StatusCode::CONFLICT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }
}
