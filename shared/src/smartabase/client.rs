//! HTTP client for Smartabase (being written).
/// Smartabase client.
pub struct SmartabaseClient;
