//! Task logic: model outputs -> typed results, each task keeping its own
//! temporal state. One folder per task: [`level`] (which interspace, on a
//! sagittal sweep) and [`target`] (where to aim, on a transverse view).

pub mod level;
pub mod target;
