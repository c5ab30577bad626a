//! Identifiers and sensitive values that cross the connector's boundaries, each with a checked constructor.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} characters")]
    TooLong { kind: &'static str, max: usize },
    #[error(
        "{kind} contains a character that is not allowed (whitespace, control, '#', '/', '?' or '&')"
    )]
    BadCharacter { kind: &'static str },
    #[error("{kind} is not a positive integer")]
    NotAnInteger { kind: &'static str },
}

/// An athlete's Smartabase UUID: the free-text identifier a site administrator sets on each user.
///
/// It keys everything the connector stores and is the `member-id` registered at Polar. Sites choose
/// the values (`"505050"`, `"test-uuid-123"`), so only what would break keys, links and logs is refused.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AthleteUuid(String);

impl AthleteUuid {
    /// Longest UUID accepted (Smartabase shows no limit; this bounds keys and URLs).
    pub const MAX_LEN: usize = 128;

    /// Checks and wraps a UUID.
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let kind = "athlete UUID";
        if value.is_empty() {
            return Err(IdError::Empty { kind });
        }
        if value.chars().count() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                kind,
                max: Self::MAX_LEN,
            });
        }
        if value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '#' | '/' | '?' | '&'))
        {
            return Err(IdError::BadCharacter { kind });
        }
        Ok(Self(value))
    }

    /// The UUID as Smartabase holds it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AthleteUuid {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<AthleteUuid> for String {
    fn from(value: AthleteUuid) -> Self {
        value.0
    }
}

impl fmt::Display for AthleteUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AthleteUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AthleteUuid({})", self.0)
    }
}

macro_rules! integer_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Wraps a positive id.
            pub fn new(value: i64) -> Result<Self, IdError> {
                if value > 0 { Ok(Self(value)) } else { Err(IdError::NotAnInteger { kind: $kind }) }
            }

            /// Parses a decimal id as found in query strings and form fields.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| IdError::NotAnInteger { kind: $kind })
                    .and_then(Self::new)
            }

            /// The raw number.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

integer_id!(
    /// Polar's user id (`x_user_id` of the token response; `user_id` in webhook payloads).
    PolarUserId,
    "Polar user id"
);
integer_id!(
    /// Smartabase's numeric `userId` (not the UUID); the data endpoints only accept this.
    SmartabaseUserId,
    "Smartabase user id"
);
integer_id!(
    /// A Smartabase event id, what `existingEventId` needs for an update.
    EventId,
    "Smartabase event id"
);

/// Polar's hashed exercise id (a string on the non-transactional endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExerciseId(String);

impl ExerciseId {
    /// Checks and wraps an exercise id; it becomes part of a URL path and a store key.
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        let kind = "exercise id";
        if value.is_empty() {
            return Err(IdError::Empty { kind });
        }
        if value.len() > 128 {
            return Err(IdError::TooLong { kind, max: 128 });
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        {
            return Err(IdError::BadCharacter { kind });
        }
        Ok(Self(value))
    }

    /// The id as Polar sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ExerciseId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<ExerciseId> for String {
    fn from(value: ExerciseId) -> Self {
        value.0
    }
}

impl fmt::Display for ExerciseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! secret_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps the raw value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The raw value, for the one place that sends it.
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_value!(
    /// A Polar bearer token. No `Display`; `Debug` is redacted.
    AccessToken
);
secret_value!(
    /// A single-use OAuth authorisation code from Polar's redirect.
    AuthCode
);

/// The random, single-use `state` of one authorisation attempt.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AuthState(String);

impl AuthState {
    /// Length of a state the connector issues: 32 random bytes, hex.
    const LEN: usize = 64;

    /// A fresh random state (from the OS-seeded generator, like every secret the connector makes).
    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::LEN / 2];
        rand::fill(&mut bytes[..]);
        Self(hex::encode(bytes))
    }

    /// Accepts a state from a callback query; anything not shaped like ours is refused before any lookup.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let kind = "state";
        if value.is_empty() {
            return Err(IdError::Empty { kind });
        }
        if value.len() != Self::LEN || !value.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(IdError::BadCharacter { kind });
        }
        Ok(Self(value.to_ascii_lowercase()))
    }

    /// The state as sent to Polar.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A state is a bearer credential for 15 minutes: show only a prefix.
        write!(f, "AuthState({}…)", &self.0[..8.min(self.0.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn athlete_uuid_accepts_site_chosen_values() {
        for ok in ["505050", "test-uuid-123", "new123", "a.b_c-d", "ÄthleteÖ"] {
            assert_eq!(
                AthleteUuid::parse(ok).map(|u| u.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn athlete_uuid_refuses_values_that_break_keys_or_urls() {
        assert_eq!(
            AthleteUuid::parse(""),
            Err(IdError::Empty {
                kind: "athlete UUID"
            })
        );
        for bad in ["a b", "a#b", "a/b", "a?b", "a&b", "a\nb"] {
            assert!(
                matches!(AthleteUuid::parse(bad), Err(IdError::BadCharacter { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            AthleteUuid::parse("x".repeat(129)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn integer_ids_must_be_positive() {
        assert_eq!(
            PolarUserId::parse(" 48211902 ").map(PolarUserId::get),
            Ok(48211902)
        );
        assert!(PolarUserId::parse("0").is_err());
        assert!(SmartabaseUserId::parse("-5").is_err());
        assert!(EventId::parse("12a").is_err());
    }

    #[test]
    fn exercise_id_refuses_path_characters() {
        assert!(ExerciseId::parse("Xy7Qp2Lr").is_ok());
        assert!(ExerciseId::parse("../users").is_err());
        assert!(ExerciseId::parse("a?b=1").is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let token = AccessToken::new("tok-SECRET-123");
        let code = AuthCode::new("code-SECRET-456");
        let printed = format!("{token:?} {code:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("[redacted]"));
        assert_eq!(token.expose_secret(), "tok-SECRET-123");
    }

    #[test]
    fn auth_state_round_trips_and_refuses_foreign_shapes() {
        let state = AuthState::generate();
        assert_eq!(state.as_str().len(), 64);
        assert_eq!(AuthState::parse(state.as_str()), Ok(state.clone()));
        assert!(AuthState::parse("short").is_err());
        assert!(AuthState::parse(&"z".repeat(64)).is_err());
        assert!(!format!("{state:?}").contains(state.as_str()));
        assert_ne!(
            AuthState::generate(),
            state,
            "every attempt gets its own state"
        );
    }
}
