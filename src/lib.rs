//! spine-edge: real-time spine guidance on small ARM/Jetson-class boxes.
//!
//! One frame's journey: a [`source::Source`] fills a pooled [`frame::Frame`];
//! a bounded, drop-oldest queue hands it to inference (preprocess + a
//! [`infer::Backend`]); task logic ([`task`]) turns model outputs into typed
//! [`result::FrameResult`]s with temporal state; [`sink`]s show or store them.
//! [`pipeline`] wires the stages onto threads; [`config`] turns a board file
//! into validated settings. See ARCHITECTURE.md in the repository.

pub mod color;
pub mod frame;
pub mod region_finder;
pub mod result;
pub mod sink;
pub mod source;
pub mod stats;
pub mod infer;
pub mod config;
pub mod task;
pub mod queue;
pub mod pool;
pub mod pipeline;
pub mod units;
pub mod app;
pub mod eval;
pub mod hw;
pub mod devices;
pub mod logging;
pub mod malloc;
pub mod eval_target;
pub mod file_read;
pub mod fuzz_harness;
