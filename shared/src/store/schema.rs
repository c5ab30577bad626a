//! Table schema (being written).
