//! The inference stage: for each frame, picks the image region, runs every
//! task's models on it (each model with its own box resizer into its
//! preallocated input) and lets the task's own outputs copy what it needs.
//! A failed model is logged with the frame number and counted; the task's
//! outputs are cleared so the task reports the failure for that frame.

use std::time::Instant;

use crate::frame::{Frame, RegionPx};
use crate::infer::preprocess::BoxResizer;
use crate::infer::Backend;
use crate::stats::LatencyHistogram;

use super::Shared;

/// What the inference stage counted.
#[derive(Default)]
pub(super) struct InferStats {
    pub preprocess: LatencyHistogram,
    pub inference: LatencyHistogram,
    pub errors: u64,
}

/// Runs until the inference queue is closed and empty; then closes the task queue.
/// `models[i]` are task `i`'s models.
pub(super) fn run(mut models: Vec<Vec<Box<dyn Backend>>>, sh: &Shared) -> InferStats {
    let mut st = InferStats::default();
    let mut resizers: Vec<Vec<BoxResizer>> = models.iter().map(|m| m.iter().map(|_| BoxResizer::new()).collect()).collect();
    let any_model = models.iter().any(|m| !m.is_empty());
    while let Some(mut work) = sh.to_infer.pop() {
        let meta = work.frame.meta;
        work.region = meta
            .image_region
            .or(sh.opts.image_region)
            .filter(|r| r.fits_in(meta.width_px, meta.height_px))
            .unwrap_or(RegionPx::full(meta.width_px, meta.height_px));
        let mut spent = (0u64, 0u64);
        for (task_i, (task_models, task_resizers)) in models.iter_mut().zip(resizers.iter_mut()).enumerate() {
            let outputs = &mut work.outputs[task_i];
            outputs.clear();
            for (model_i, (b, r)) in task_models.iter_mut().zip(task_resizers.iter_mut()).enumerate() {
                let ok = run_model(b.as_mut(), r, &work.frame, work.region, &mut spent) && outputs.capture(model_i, b.as_mut());
                if !ok {
                    st.errors += 1;
                    outputs.clear();
                    break;
                }
            }
        }
        if any_model {
            st.preprocess.record_us(spent.0);
            st.inference.record_us(spent.1);
        }
        sh.to_task.push_wait(work);
    }
    sh.to_task.close();
    st
}

/// Preprocesses `frame`'s `region` into the backend's input and runs it,
/// adding the time spent to `spent_us` (preprocess, inference); logs a failure.
fn run_model(b: &mut dyn Backend, resizer: &mut BoxResizer, frame: &Frame, region: RegionPx, spent_us: &mut (u64, u64)) -> bool {
    let (h, w) = b.manifest().input_hw();
    let (mean, std) = (b.manifest().input.mean, b.manifest().input.std);
    let t0 = Instant::now();
    let pre = resizer.resize_into(frame, region, b.input_mut(), w, h, mean, std);
    let t1 = Instant::now();
    spent_us.0 += (t1 - t0).as_micros() as u64;
    let ran = pre.map_err(|e| e.to_string()).and_then(|_| b.run().map_err(|e| e.to_string()));
    spent_us.1 += t1.elapsed().as_micros() as u64;
    match ran {
        Ok(()) => true,
        Err(e) => {
            log::warn!("frame {}: {}: {e}", frame.meta.sequence, b.manifest().model.name);
            false
        }
    }
}
