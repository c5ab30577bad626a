//! Common crate of the Polar → Smartabase connector: configuration, the Polar and Smartabase clients,
//! stores, the queue, mapping, crypto, the rate budget, telemetry and the use cases every function runs.

pub mod aws;
pub mod bootstrap;
pub mod budget;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod edge;
pub mod error;
pub mod http;
pub mod ids;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod polar;
pub mod queue;
pub mod smartabase;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod usecase;
