//! Async client (to come).
