//! HTTP client for Polar AccessLink (being written).
/// Polar endpoints.
pub struct PolarEndpoints;
/// Polar client.
pub struct PolarClient;
