//! The redemption page in headless Chromium (filled in below).
