//! The task and sink stage: runs every task's logic on each frame into one
//! [`FrameResult`], hands it to every sink, and watches for stalls: no frame
//! for `stall_timeout_ms` tells the sinks `Stalled` (or `NoSignal` when the
//! source said so), the next frame `Running`, the end `Stopped`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::result::FrameResult;
use crate::sink::{PipelineStatus, Sink};
use crate::stats::LatencyHistogram;
use crate::task::Task;

use super::Shared;

/// What the task stage counted.
#[derive(Default)]
pub(super) struct TaskStats {
    pub processed: u64,
    pub sink_errors: u64,
    pub task: LatencyHistogram,
    pub sinks: LatencyHistogram,
    pub end_to_end: LatencyHistogram,
}

/// Runs until the task queue is closed and empty; gives the tasks and sinks back for `finish`.
pub(super) fn run(
    mut tasks: Vec<Box<dyn Task>>,
    mut sinks: Vec<Box<dyn Sink>>,
    sh: &Shared,
) -> (TaskStats, Vec<Box<dyn Task>>, Vec<Box<dyn Sink>>) {
    let stall = Duration::from_millis(sh.opts.stall_timeout_ms.max(1));
    let mut st = TaskStats::default();
    let mut status = PipelineStatus::Running;
    let mut last_frame = Instant::now();
    loop {
        let work = match sh.to_task.pop_timeout(stall) {
            Ok(Some(w)) => w,
            Ok(None) => break,
            Err(()) => {
                let now = if sh.no_signal.load(Ordering::Relaxed) {
                    PipelineStatus::NoSignal
                } else {
                    PipelineStatus::Stalled { since_ms: last_frame.elapsed().as_millis() as u64 }
                };
                if std::mem::discriminant(&now) != std::mem::discriminant(&status) {
                    status = now;
                    tell(&mut sinks, status, &mut st.sink_errors);
                }
                continue;
            }
        };
        last_frame = Instant::now();
        if status != PipelineStatus::Running {
            status = PipelineStatus::Running;
            tell(&mut sinks, status, &mut st.sink_errors);
        }
        let t0 = Instant::now();
        let meta = work.frame.meta;
        let mut result = FrameResult::empty(&meta);
        for (task, outputs) in tasks.iter_mut().zip(work.outputs.iter()) {
            task.process(&work.frame, work.region, outputs.as_ref(), &mut result);
        }
        let t1 = Instant::now();
        st.task.record_us((t1 - t0).as_micros() as u64);
        result.latency_us = (t1 - work.entered).as_micros().min(u32::MAX as u128) as u32;
        for s in sinks.iter_mut() {
            if let Err(e) = s.consume(&work.frame, &result) {
                log::warn!("frame {}: {}: {e}", meta.sequence, s.name());
                st.sink_errors += 1;
            }
        }
        st.sinks.record_us(t1.elapsed().as_micros() as u64);
        st.end_to_end.record_us(work.entered.elapsed().as_micros() as u64);
        st.processed += 1;
        sh.pool.give(work);
    }
    tell(&mut sinks, PipelineStatus::Stopped, &mut st.sink_errors);
    (st, tasks, sinks)
}

fn tell(sinks: &mut [Box<dyn Sink>], status: PipelineStatus, errors: &mut u64) {
    match status {
        PipelineStatus::Running => log::info!("pipeline running"),
        PipelineStatus::Stopped => log::info!("pipeline stopped"),
        other => log::warn!("pipeline status: {other:?}"),
    }
    for s in sinks.iter_mut() {
        if let Err(e) = s.status(status) {
            log::warn!("{}: {e}", s.name());
            *errors += 1;
        }
    }
}
