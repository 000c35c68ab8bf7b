//! End-to-end tests across crates live in `tests/`; this library is empty on purpose.
//!
//! # Layout
//! - `tests/upload_completed_end_to_end.rs`: a web user's file request through the request
//!   API, the camera agent over Mosquitto, its upload to moto's S3, to the notification whose
//!   link downloads the file.
//! - `tests/plates_end_to_end.rs`: the agent's plate reads through Mosquitto and plate-ingest
//!   into moto's DynamoDB, each exactly once across outages, a kill and a broker restart.
//! - `tests/broker_is_like_iot_core.rs`: the test broker behaves like AWS IoT Core where the
//!   system relies on it.
//! - `tests/cost_model.rs`: `scripts/cost-model` runs and its arithmetic holds.
