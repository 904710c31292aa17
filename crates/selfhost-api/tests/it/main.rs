//! The self-hosted API against literal JSON written from the spec, its authorization per role
//! and status, and the web vault's own sequence against the reference cloud.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod authorization;
mod endpoints;
mod fixture;
mod pages;
mod runner;
mod sequence;
