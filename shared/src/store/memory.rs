//! Memory store (being written).
