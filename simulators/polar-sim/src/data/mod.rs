//! Polar data: wire shapes, the seeded generator and the per-account record store.

pub(crate) mod generator;
pub(crate) mod store;
pub(crate) mod wire;
