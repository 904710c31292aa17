//! Owner flows (filled in below).
