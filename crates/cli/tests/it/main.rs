//! Integration tests of `sponsorctl`: the binary, run as an operator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Scenario tests read top to bottom; fixtures are built with format!.
#![allow(clippy::too_many_lines, clippy::format_push_string)]

mod bad_input;
mod common;
mod concurrency;
mod end_to_end;
mod licenses;
mod local_commands;
mod scripting;
mod server_db;
mod terminal;
