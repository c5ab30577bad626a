//! Local stack for tests: a moto server shared by every test of a process ([`moto`]), and helpers to
//! give each test its own table and queues.

pub mod moto;
