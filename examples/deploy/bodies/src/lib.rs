//! The bodies a service and its clients share, version 1: the server serves them, the clients
//! call them. Each is a function that returns the call, so callers name it like any other
//! function.

pub mod jobs;
pub mod reports;
