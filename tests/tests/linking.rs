//! Athlete linking end to end (issue 4), on moto and both simulators: the web flow, the Athlete-app
//! pickup by the scan, the revoke hook, Polar-side disconnects, roster removal and the scan's bounded
//! runs. Every test ends by scanning the captured logs for the world's secrets, tokens and codes.

#[path = "linking/app.rs"]
mod app;
#[path = "linking/disconnect.rs"]
mod disconnect;
#[path = "linking/revoke.rs"]
mod revoke;
#[path = "linking/roster.rs"]
mod roster;
#[path = "linking/scan.rs"]
mod scan;
#[path = "linking/support.rs"]
mod support;
#[path = "linking/web.rs"]
mod web;
