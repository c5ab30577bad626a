//! Athlete linking end to end (issues 4 and 10), on moto and both simulators: the web flow bound to
//! its browser, the callback within API Gateway's time, re-linking, the Athlete-app pickup by the scan,
//! the revoke hook, Polar-side disconnects (and what races them), roster removal and the scan's bounded
//! runs. Every test ends by scanning the captured logs for the world's secrets, tokens and codes.

#[path = "linking/app.rs"]
mod app;
#[path = "linking/callback_time.rs"]
mod callback_time;
#[path = "linking/disconnect.rs"]
mod disconnect;
#[path = "linking/outcomes.rs"]
mod outcomes;
#[path = "linking/relink.rs"]
mod relink;
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
