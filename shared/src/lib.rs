//! Common crate of the Polar → Smartabase connector.
