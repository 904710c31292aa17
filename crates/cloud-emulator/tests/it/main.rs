//! Integration tests of the cloud emulator: endpoints over HTTP on 127.0.0.1, and the
//! redemption page in a real headless Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod api;
mod browser;
mod fixture;
mod owner;
mod real_cloud;
mod with_client;
