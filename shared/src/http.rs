//! The one HTTP client a function shares between its Polar and Smartabase clients, built on first use:
//! a function that never calls either (the webhook, the fan-out) never pays for it, and the others build
//! it once per container (a rustls client loads its trust roots, the costliest step of init after the
//! secret). Each API client sets its own whole-request timeout on every request.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Connect timeout for every outside call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// rustls, [`CONNECT_TIMEOUT`], our user agent, no redirects (neither API redirects; following one could
/// carry credentials elsewhere or turn a POST into a GET).
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_backend_rustls()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!(
            "polar-smartabase-connector/",
            env!("CARGO_PKG_VERSION")
        ))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// An HTTP client shared by clones, built by [`client`] on the first [`SharedHttp::get`] unless one was
/// given.
#[derive(Clone, Default)]
pub struct SharedHttp(Arc<OnceLock<Result<reqwest::Client, String>>>);

impl SharedHttp {
    /// Built on first use.
    pub fn lazy() -> Self {
        Self::default()
    }

    /// The client, building it if this is the first use. A failure (the TLS backend would not start) is
    /// kept and returned to every caller as text; it never panics.
    pub fn get(&self) -> Result<&reqwest::Client, &str> {
        self.0
            .get_or_init(|| client().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }
}

impl From<reqwest::Client> for SharedHttp {
    fn from(client: reqwest::Client) -> Self {
        Self(Arc::new(OnceLock::from(Ok(client))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_client_built_on_first_use() {
        let lazy = SharedHttp::lazy();
        let clone = lazy.clone();
        assert!(lazy.0.get().is_none(), "nothing is built before first use");
        let first: *const reqwest::Client = lazy.get().unwrap();
        let second: *const reqwest::Client = clone.get().unwrap();
        assert_eq!(first, second, "one client for every clone");
    }
}
