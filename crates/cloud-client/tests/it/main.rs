//! Integration tests of the cloud client against `wiremock` servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod contract;
mod errors;
mod identity;
mod license;
mod request_shape;
mod runner;
mod secrets;
mod support;
mod sync;
