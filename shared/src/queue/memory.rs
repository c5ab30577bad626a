//! Memory queue (being written).
