//! Local stack for tests and the demo: a moto server shared by every test of a process ([`moto`]), the
//! sync queue with its event-source behaviour ([`queue`]), the API Gateway front ([`front`]), a
//! whole connector on both simulators ([`world`]) and the metric lines of a child test ([`emf`]).

pub mod demo;
pub mod emf;
pub mod front;
pub mod local;
pub mod logs;
pub mod moto;
pub mod queue;
pub mod runtime_api;
pub mod webhook_relay;
pub mod world;
