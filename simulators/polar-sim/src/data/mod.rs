//! Polar data: wire shapes, the seeded generators and the per-account record store.

pub(crate) mod generator;
pub(crate) mod optional;
pub(crate) mod store;
pub(crate) mod wire;
