//! Results are data: what each task concluded about one frame, with units in
//! the names. Sinks decide how to show them (JSON lines, overlay, GPIO, DICOM).
//! Every type here is fixed-size so producing a result allocates nothing.

use serde::Serialize;

/// Lumbar interspaces, caudal to cephalad; the index is the interspace index.
pub const INTERSPACE_LABELS: [&str; 5] = ["L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2"];
/// The vertebra whose lamina lies just cephalad of interspace `i`.
pub const LAMINA_LABELS: [&str; 5] = ["L5", "L4", "L3", "L2", "L1"];

/// Which way the probe is moving along the spine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Cephalad,
    Caudad,
    Still,
}

/// What lies under the centre of the probe, when the level logic is sure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpinePosition {
    Sacrum,
    /// The lamina of vertebra `LAMINA_LABELS[index]`.
    Lamina { index: u8 },
    /// Interspace `INTERSPACE_LABELS[index]`.
    Interspace { index: u8 },
}

impl SpinePosition {
    /// "S1", "L4", "L4-L5" ...; `None` for a lamina or interspace above L1.
    pub fn label(&self) -> Option<&'static str> {
        match *self {
            SpinePosition::Sacrum => Some("S1"),
            SpinePosition::Lamina { index } => LAMINA_LABELS.get(index as usize).copied(),
            SpinePosition::Interspace { index } => INTERSPACE_LABELS.get(index as usize).copied(),
        }
    }
}

/// Why the level logic gives no guidance for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoGuidanceReason {
    /// The sacrum has not been seen yet, so there is nothing to count from.
    WaitingForSacrum,
    /// The probe is off the back (lift-off, no contact).
    ProbeOffSpine,
    /// The classifier is not confident enough.
    LowConfidence,
    /// The count was lost (lift-off while moving, or beyond L1); re-anchor at the sacrum.
    CountLost,
    /// The model could not run on this frame.
    InferenceFailed,
}

/// Something worth telling the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LevelEvent {
    /// The probe moved onto a new interspace.
    Entered { label: &'static str },
    /// The sacrum was seen: the count starts (again) from L5-S1.
    SacrumAnchored,
    GuidanceLost { reason: NoGuidanceReason },
    GuidanceRegained,
}

/// The level identification's answer for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LevelResult {
    /// `Some` only when the logic is sure; `None` means "no guidance".
    pub position: Option<SpinePosition>,
    /// The position's label ("L4-L5"); `None` when there is no guidance.
    pub label: Option<&'static str>,
    /// Interspace index (0 = L5-S1) when over an interspace.
    pub interspace_index: Option<u8>,
    pub no_guidance: Option<NoGuidanceReason>,
    /// Smoothed probability of the class the logic acted on, 0..1.
    pub confidence: f32,
    pub direction: Direction,
    /// Probe motion along the spine since the previous frame, in mm
    /// (positive = cephalad); in pixels of the image region when no spacing is known.
    pub motion_mm: Option<f32>,
    pub motion_px: f32,
    /// Smoothed class probabilities: sacrum, lamina, interspace, off_spine.
    pub class_probs: [f32; 4],
    pub event: Option<LevelEvent>,
}

/// Everything concluded about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrameResult {
    pub sequence: u64,
    pub timestamp_us: u64,
    pub source_id: u16,
    /// Time from the frame entering the pipeline to this result, in microseconds.
    pub latency_us: u32,
    pub level: Option<LevelResult>,
}
