//! The needle-target task on the pipeline's [`Task`] seam: its
//! [`TargetOutputs`] copy the target model's heatmap, plane logit, input
//! mean and (when the model has them) needle outputs on the inference
//! thread; [`TargetTask`]'s [`Task::process`] decodes them on the task thread.
//! Board table `[target]`, model `[models] target`.

use std::any::Any;

use crate::frame::{Frame, RegionPx};
use crate::infer::Backend;
use crate::result::FrameResult;
use crate::task::registry::{settings_from, Registration, TaskContext};
use crate::task::{Task, TaskError, TaskOutputs, TaskStage};

use super::needle_model::NeedleOutputs;
use super::{TargetError, TargetInputs, TargetModelLayout, TargetSettings, TargetTask};

const NAME: &str = "target";

/// The target task's registration ([`crate::task::registry::REGISTRY`]).
pub const REGISTRATION: Registration = Registration { name: NAME, validate: validate_table, build };

fn validate_table(table: Option<&toml::Value>) -> Result<(), (String, String)> {
    settings_from::<TargetSettings>(table)?.validate()
}

/// Builds the task. Without a pixel spacing it runs in pixel-only mode (see the module doc of [`super`]).
fn build(ctx: &TaskContext<'_>) -> Result<TaskStage, TaskError> {
    let s: TargetSettings = settings_from(ctx.table).map_err(|(k, r)| ctx.invalid(&format!("target.{k}"), r))?;
    s.validate().map_err(|(k, r)| ctx.invalid(&format!("target.{k}"), r))?;
    let manifest = ctx.manifest(NAME)?;
    let layout = TargetModelLayout::from_manifest(&manifest).map_err(|e| match e {
        TargetError::Manifest { manifest, what } => TaskError::Model { manifest, task: NAME, what },
    })?;
    if ctx.calibration.is_none() && !ctx.source.spacing_from_stream {
        log::warn!(
            "{}: no pixel spacing ([probe] mm_per_px_x/_y not set): the target task runs in pixel-only mode (no depth in mm, no on-target)",
            ctx.source.name
        );
    }
    let backend = crate::infer::load(&manifest, ctx.backend, ctx.threads)?;
    Ok(TaskStage { task: Box::new(TargetTask::new(s, layout)), models: vec![backend] })
}

/// The target model's outputs for one frame.
pub struct TargetOutputs {
    layout: TargetModelLayout,
    heatmap: Vec<f32>,
    plane_logit: f32,
    input_mean: f32,
    ok: bool,
    needle_tip: Vec<f32>,
    needle_entry: Vec<f32>,
    needle_logit: f32,
    needle_ok: bool,
}

impl TargetOutputs {
    fn new(layout: TargetModelLayout) -> Self {
        let g = layout.grid;
        let needle_len = layout.needle.map(|n| n.grid.width_cells * n.grid.height_cells).unwrap_or(0);
        Self {
            layout,
            heatmap: vec![0.0; g.width_cells * g.height_cells],
            plane_logit: 0.0,
            input_mean: 0.0,
            ok: false,
            needle_tip: vec![0.0; needle_len],
            needle_entry: vec![0.0; needle_len],
            needle_logit: 0.0,
            needle_ok: false,
        }
    }

    /// What the task logic reads (`None` fields: inference failed or no such output).
    fn inputs(&self) -> TargetInputs<'_> {
        if !self.ok {
            return TargetInputs { input_mean: None, heatmap: None, plane_logit: None, needle: None };
        }
        let needle = self.needle_ok.then(|| NeedleOutputs { tip: &self.needle_tip[..], entry: &self.needle_entry[..], present_logit: self.needle_logit });
        TargetInputs { input_mean: Some(self.input_mean), heatmap: Some(&self.heatmap[..]), plane_logit: Some(self.plane_logit), needle }
    }
}

impl TaskOutputs for TargetOutputs {
    fn clear(&mut self) {
        self.ok = false;
        self.needle_ok = false;
    }

    fn capture(&mut self, _model: usize, b: &mut dyn Backend) -> bool {
        let l = self.layout;
        let (heat, plane) = (b.output(l.heatmap_output), b.output(l.plane_output));
        if heat.len() != self.heatmap.len() || plane.len() != 1 {
            return false;
        }
        self.heatmap.copy_from_slice(heat);
        self.plane_logit = plane[0];
        if let Some(n) = l.needle {
            let (tip, entry, present) = (b.output(n.tip_output), b.output(n.entry_output), b.output(n.present_output));
            if tip.len() == self.needle_tip.len() && entry.len() == self.needle_entry.len() && present.len() == 1 {
                self.needle_tip.copy_from_slice(tip);
                self.needle_entry.copy_from_slice(entry);
                self.needle_logit = present[0];
                self.needle_ok = true;
            }
        }
        let input = b.input_mut();
        self.input_mean = input.iter().sum::<f32>() / input.len().max(1) as f32;
        self.ok = true;
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Task for TargetTask {
    fn name(&self) -> &'static str {
        NAME
    }

    fn new_outputs(&self) -> Box<dyn TaskOutputs> {
        Box::new(TargetOutputs::new(*self.layout()))
    }

    fn process(&mut self, frame: &Frame, region: RegionPx, outputs: &dyn TaskOutputs, result: &mut FrameResult) {
        let inputs = match outputs.as_any().downcast_ref::<TargetOutputs>() {
            Some(o) => o.inputs(),
            None => TargetInputs { input_mean: None, heatmap: None, plane_logit: None, needle: None },
        };
        result.target = Some(self.update(frame, region, inputs));
    }
}
