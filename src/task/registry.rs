//! The one place tasks are registered. The board names tasks by their
//! [`Registration::name`]; [`validate_table`] checks a task's board table when
//! the board is loaded (errors name the key), [`build`] makes the selected
//! tasks with their models at start.

use std::path::{Path, PathBuf};

use crate::frame::PixelSpacingMm;
use crate::infer::{BackendKind, Manifest, ManifestPolicy};
use crate::source::SourceInfo;

use super::{TaskError, TaskStage};

/// Everything a task may use to build itself at start.
pub struct TaskContext<'a> {
    /// The board file (for error messages).
    pub board_path: &'a Path,
    /// The task's own board table (`[level]`, `[target]`...), if the board has one.
    pub table: Option<&'a toml::Value>,
    /// The manifest of the task's model: the command line's, else the board's `[models] <task>`.
    pub model: Option<&'a Path>,
    pub backend: BackendKind,
    /// How the model's manifest is trusted (the board's `[model_signing]`).
    pub model_policy: &'a ManifestPolicy,
    pub threads: usize,
    /// The board's probe calibration (`[probe] mm_per_px_x/_y`), if any.
    pub calibration: Option<PixelSpacingMm>,
    /// The open source: its rate and whether its frames can carry a pixel spacing.
    pub source: &'a SourceInfo,
}

impl TaskContext<'_> {
    /// A setting error on `key` of this task's table.
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> TaskError {
        TaskError::Setting { board: self.board_path.display().to_string(), key: key.to_string(), reason: reason.into() }
    }

    /// The task's manifest, loaded and checked to be for `task`.
    pub fn manifest(&self, task: &'static str) -> Result<Manifest, TaskError> {
        let path: PathBuf = self
            .model
            .ok_or_else(|| self.invalid(&format!("models.{task}"), format!("the {task} task is selected but no {task} model is given")))?
            .to_path_buf();
        let manifest = Manifest::load_with(&path, self.model_policy)?;
        if manifest.model.task != task {
            return Err(TaskError::Model {
                manifest: path.display().to_string(),
                task,
                what: format!("a model with task = \"{task}\" (this one has \"{}\")", manifest.model.task),
            });
        }
        Ok(manifest)
    }
}

/// A registered task.
pub struct Registration {
    pub name: &'static str,
    /// Checks the task's board table (`None`: the board has none); `Err((key, reason))`, key relative to the table.
    pub validate: fn(Option<&toml::Value>) -> Result<(), (String, String)>,
    pub build: fn(&TaskContext<'_>) -> Result<TaskStage, TaskError>,
}

/// Every task this build knows, in the order they run on a frame.
pub const REGISTRY: &[Registration] = &[
    super::level::REGISTRATION,
    super::needle_target::task::REGISTRATION,
];

/// The registration named `name`.
pub fn find(name: &str) -> Result<&'static Registration, TaskError> {
    REGISTRY.iter().find(|r| r.name == name).ok_or_else(|| TaskError::Unknown { name: name.to_string(), known: known() })
}

/// The registered names, comma-separated (for error messages).
pub fn known() -> String {
    REGISTRY.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
}

/// Checks a task selection: known names, no repeats, at least one.
pub fn check_selection<S: AsRef<str>>(tasks: &[S]) -> Result<(), String> {
    if tasks.is_empty() {
        return Err(format!("no task selected: expected one or more of {}", known()));
    }
    for (i, t) in tasks.iter().enumerate() {
        let t = t.as_ref();
        if find(t).is_err() {
            return Err(format!("unknown task '{t}': expected {}", known()));
        }
        if tasks[..i].iter().any(|u| u.as_ref() == t) {
            return Err(format!("task '{t}' is listed twice"));
        }
    }
    Ok(())
}

/// Builds the `selected` tasks (in registry order) with `context_for` giving each its context.
pub fn build<'a>(selected: &[String], mut context_for: impl FnMut(&'static str) -> TaskContext<'a>) -> Result<Vec<TaskStage>, TaskError> {
    let mut stages = Vec::new();
    for r in REGISTRY {
        if selected.iter().any(|s| s == r.name) {
            stages.push((r.build)(&context_for(r.name))?);
        }
    }
    for s in selected {
        find(s)?;
    }
    Ok(stages)
}

/// Deserializes a task's table (absent = all defaults); the error names the key.
pub fn settings_from<T: serde::de::DeserializeOwned + Default>(table: Option<&toml::Value>) -> Result<T, (String, String)> {
    match table {
        None => Ok(T::default()),
        Some(v) => T::deserialize(v.clone()).map_err(|e| {
            let msg = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            // serde names the offending field in backticks: use it as the key.
            let key = msg.split('`').nth(1).unwrap_or("").to_string();
            (key, msg)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_checked_against_the_registry() {
        assert!(check_selection(&["level"]).is_ok());
        assert!(check_selection(&["level", "target"]).is_ok());
        assert!(check_selection::<&str>(&[]).unwrap_err().contains("no task"));
        assert!(check_selection(&["levels"]).unwrap_err().contains("unknown task 'levels'"));
        assert!(check_selection(&["level", "level"]).unwrap_err().contains("twice"));
    }

    #[test]
    fn settings_errors_name_the_key() {
        #[derive(serde::Deserialize, Default, Debug)]
        #[serde(deny_unknown_fields, default)]
        struct S {
            #[allow(dead_code)]
            a: f32,
        }
        let v: toml::Value = toml::from_str("b = 1.0").unwrap();
        let (key, msg) = settings_from::<S>(Some(&v)).unwrap_err();
        assert_eq!(key, "b", "{msg}");
        let v: toml::Value = toml::from_str("a = 'x'").unwrap();
        assert!(settings_from::<S>(Some(&v)).is_err());
        assert!(settings_from::<S>(None).is_ok());
    }
}
