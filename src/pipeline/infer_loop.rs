//! The inference stage: for each frame, picks the image region (the
//! source's, else the board's: fixed, whole frame, or found on the frames
//! with `image_region = "auto"`), runs every
//! task's models on it (each model with its own box resizer into its
//! preallocated input) and lets the task's own outputs copy what it needs.
//! A failed model is logged with the frame number and counted; the task's
//! outputs are cleared so the task reports the failure for that frame.
//! Models that take the same input tensor (same shape and normalisation,
//! [`crate::infer::Manifest::same_input_contract`]) from the same region get
//! a copy of the first one's input instead of resizing the region again.

use std::time::Instant;

use crate::frame::{Frame, ImageRegionSetting, RegionPx};
use crate::region_finder::{Found, RegionFinder};
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
pub(super) fn run(mut models: Vec<Vec<Box<dyn Backend>>>, sh: &Shared, max_frame_px: (u32, u32)) -> InferStats {
    let mut st = InferStats::default();
    let mut finder = (sh.opts.image_region == ImageRegionSetting::Auto).then(|| RegionFinder::new(max_frame_px.0, max_frame_px.1, AUTO_REGION_WINDOW_FRAMES));
    let mut resizers: Vec<Vec<BoxResizer>> = models.iter().map(|m| m.iter().map(|_| BoxResizer::new()).collect()).collect();
    let any_model = models.iter().any(|m| !m.is_empty());
    let share = SharedInputs::new(&models);
    let mut scratch = vec![0.0f32; share.scratch_len];
    while let Some(mut work) = sh.to_infer.pop() {
        let meta = work.frame.meta;
        let board_region = match sh.opts.image_region {
            ImageRegionSetting::Whole => Some(RegionPx::full(meta.width_px, meta.height_px)),
            ImageRegionSetting::Fixed(r) => Some(r),
            ImageRegionSetting::Auto => finder.as_mut().and_then(|f| auto_region(f, &work.frame)),
        };
        let region = match meta.image_region.or(board_region) {
            Some(r) if r.fits_in(meta.width_px, meta.height_px) => Some(r),
            Some(_) => Some(RegionPx::full(meta.width_px, meta.height_px)),
            None => None,
        };
        if let Some(r) = region {
            work.region = r;
        }
        let mut spent = (0u64, 0u64);
        // Whether `scratch` holds this frame's input of the sharing source.
        let mut kept = false;
        for (task_i, (task_models, task_resizers)) in models.iter_mut().zip(resizers.iter_mut()).enumerate() {
            let outputs = &mut work.outputs[task_i];
            outputs.clear();
            // No region yet ("auto" still looking): no model runs; the tasks report no guidance.
            let Some(region) = region else { continue };
            for (model_i, (b, r)) in task_models.iter_mut().zip(task_resizers.iter_mut()).enumerate() {
                let input = if share.copies[task_i][model_i] && kept {
                    Input::CopyFrom(&scratch)
                } else if share.source == Some((task_i, model_i)) {
                    Input::ResizeAndKeep(&mut scratch, &mut kept)
                } else {
                    Input::Resize
                };
                let ok = run_model(b.as_mut(), r, input, &work.frame, region, &mut spent) && outputs.capture(model_i, b.as_mut());
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

/// Frames in each window of `image_region = "auto"` (re-checked every window).
const AUTO_REGION_WINDOW_FRAMES: u32 = 24;

/// Feeds the finder and says what it found (logged when it changes).
fn auto_region(finder: &mut RegionFinder, frame: &Frame) -> Option<RegionPx> {
    match finder.push(frame) {
        Found::New(r) => log::info!(
            "frame {}: image region found: x {} y {} width {} height {} px",
            frame.meta.sequence, r.x_px, r.y_px, r.width_px, r.height_px
        ),
        Found::Nothing if finder.region().is_none() => log::warn!("frame {}: no live ultrasound image found on the screen yet", frame.meta.sequence),
        _ => {}
    }
    finder.region()
}

/// Which models take a copy of an earlier model's input instead of resizing
/// the region again: the first model (in pipeline order) whose input
/// contract a later model shares is the source; those later models copy it.
/// (One source: one scratch buffer.)
struct SharedInputs {
    source: Option<(usize, usize)>,
    copies: Vec<Vec<bool>>,
    /// The source's input length (0: nothing is shared).
    scratch_len: usize,
}

impl SharedInputs {
    fn new(models: &[Vec<Box<dyn Backend>>]) -> Self {
        let order: Vec<(usize, usize)> = models.iter().enumerate().flat_map(|(t, m)| (0..m.len()).map(move |i| (t, i))).collect();
        let manifest = |(t, i): (usize, usize)| models[t][i].manifest();
        let mut copies: Vec<Vec<bool>> = models.iter().map(|m| vec![false; m.len()]).collect();
        for (k, &src) in order.iter().enumerate() {
            let later: Vec<(usize, usize)> = order[k + 1..].iter().copied().filter(|&p| manifest(src).same_input_contract(manifest(p))).collect();
            if !later.is_empty() {
                for p in later {
                    copies[p.0][p.1] = true;
                }
                return Self { source: Some(src), copies, scratch_len: manifest(src).input.shape.iter().product() };
            }
        }
        Self { source: None, copies, scratch_len: 0 }
    }
}

/// How a model's input is made for one frame.
enum Input<'a> {
    /// Resize the region into it.
    Resize,
    /// Resize the region into it and keep a copy for later models (the flag
    /// says the copy was made).
    ResizeAndKeep(&'a mut [f32], &'a mut bool),
    /// Copy an earlier model's input (same contract, same region).
    CopyFrom(&'a [f32]),
}

/// Preprocesses `frame`'s `region` into the backend's input (or copies an
/// earlier model's) and runs it, adding the time spent to `spent_us`
/// (preprocess, inference); logs a failure.
fn run_model(b: &mut dyn Backend, resizer: &mut BoxResizer, input: Input<'_>, frame: &Frame, region: RegionPx, spent_us: &mut (u64, u64)) -> bool {
    let (h, w) = b.manifest().input_hw();
    let (mean, std) = (b.manifest().input.mean, b.manifest().input.std);
    let t0 = Instant::now();
    let pre = match input {
        Input::CopyFrom(kept) => {
            let dst = b.input_mut();
            dst.copy_from_slice(&kept[..dst.len()]);
            Ok(())
        }
        Input::Resize => resizer.resize_into(frame, region, b.input_mut(), w, h, mean, std),
        Input::ResizeAndKeep(keep, kept) => resizer.resize_into(frame, region, b.input_mut(), w, h, mean, std).map(|_| {
            let src = b.input_mut();
            keep[..src.len()].copy_from_slice(src);
            *kept = true;
        }),
    };
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
