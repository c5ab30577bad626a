//! ISO-8601 durations (being written).
