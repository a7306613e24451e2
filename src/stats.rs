//! Counters and latency histograms for a run, and the summary written at the end.
//!
//! Latencies go into fixed log-spaced histograms (no allocation per sample);
//! percentiles are read from the bucket edges, so they are upper bounds within
//! about 5 % of the true value.

use serde::Serialize;

const BUCKETS: usize = 256;
/// Bucket `i` holds samples below `MIN_US * GROWTH^(i+1)`.
const MIN_US: f64 = 1.0;
const GROWTH: f64 = 1.05;

/// A latency histogram in microseconds, 1 us .. ~4e5 s, 5 % resolution.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
    total: u64,
    max_us: u64,
    sum_us: u128,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { counts: [0; BUCKETS], total: 0, max_us: 0, sum_us: 0 }
    }
}

impl LatencyHistogram {
    pub fn record_us(&mut self, us: u64) {
        let i = if (us as f64) < MIN_US {
            0
        } else {
            (((us as f64) / MIN_US).ln() / GROWTH.ln()).floor() as usize
        };
        self.counts[i.min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
        self.sum_us += us as u128;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0..1) in microseconds; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = MIN_US * GROWTH.powi(i as i32 + 1);
                return upper.min(self.max_us as f64);
            }
        }
        self.max_us as f64
    }

    pub fn mean_us(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum_us as f64 / self.total as f64 }
    }

    pub fn summary(&self) -> StageLatency {
        StageLatency {
            count: self.total,
            p50_ms: self.quantile_us(0.50) / 1000.0,
            p99_ms: self.quantile_us(0.99) / 1000.0,
            p999_ms: self.quantile_us(0.999) / 1000.0,
            max_ms: self.max_us as f64 / 1000.0,
            mean_ms: self.mean_us() / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct StageLatency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// Per-stage latencies of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageLatencies {
    /// Crop, resize and normalise into the model input.
    pub preprocess: StageLatency,
    /// The model run alone.
    pub inference: StageLatency,
    /// Task logic (level counting, target filtering).
    pub task: StageLatency,
    /// All sinks for one frame (overlay drawing and writing included).
    pub sinks: StageLatency,
    /// From the frame entering the pipeline to its last sink.
    pub end_to_end: StageLatency,
}

/// What a run did, written by sinks at the end.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunSummary {
    pub source: String,
    /// Frames the source delivered.
    pub frames_in: u64,
    /// Frames that reached the sinks.
    pub frames_processed: u64,
    /// Frames dropped because inference lagged (oldest waiting frame dropped).
    pub frames_dropped: u64,
    /// Frames the source could not decode (each logged with its number).
    pub frame_errors: u64,
    /// Frames whose inference failed.
    pub inference_errors: u64,
    /// Sink errors (each logged).
    pub sink_errors: u64,
    /// Gaps in the source's sequence numbers (frames lost before us).
    pub sequence_gaps: u64,
    pub wall_s: f64,
    /// Frames processed per second of wall time.
    pub fps: f64,
    pub latency: StageLatencies,
    /// Interspaces entered, in order, as the level logic announced them.
    pub levels_entered: Vec<&'static str>,
    /// The source's fatal error, if it ended the run early.
    pub source_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_five_percent() {
        let mut h = LatencyHistogram::default();
        for us in 1..=1000u64 {
            h.record_us(us);
        }
        let p50 = h.quantile_us(0.5);
        let p99 = h.quantile_us(0.99);
        assert!((500.0..=525.0).contains(&p50), "p50 {p50}");
        assert!((990.0..=1000.0).contains(&p99), "p99 {p99}");
        assert_eq!(h.count(), 1000);
        assert!((h.mean_us() - 500.5).abs() < 1e-9);
    }

    #[test]
    fn empty_histogram_reads_zero() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile_us(0.99), 0.0);
    }
}
