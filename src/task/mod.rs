//! Task logic: model outputs -> typed results, each task keeping its own
//! temporal state. One folder per task.

pub mod level;
