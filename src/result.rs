//! Results are data: what each task concluded about one frame, with units in
//! the names. Sinks decide how to show them (JSON lines, overlay, GPIO, DICOM).
//! Every type here is fixed-size so producing a result allocates nothing.

use serde::Serialize;

use crate::units::{Deg, Mm, Px};

/// Version of the JSON lines schema (docs/results.md). 2: `schema_version`
/// in every line; `no_pixel_spacing` as a level no-guidance reason; shown /
/// not shown as one `guidance` tag with either the answer or the reason
/// (no parallel optional fields); the needle as one tagged object.
pub const SCHEMA_VERSION: u32 = 2;

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
    /// The frame carries no pixel spacing: probe travel cannot be measured in mm.
    NoPixelSpacing,
    /// Not a live lumbar sagittal view: a blank or frozen screen, or an image the model does not know.
    ImageNotRecognised,
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

/// Whether the level logic shows a level on this frame: a position with its
/// label, or no guidance with the reason, never both (serialized flat into
/// [`LevelResult`]: `"guidance": "shown", "position": …, "label": …` or
/// `"guidance": "none", "reason": …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "guidance", rename_all = "snake_case")]
pub enum LevelGuidance {
    Shown { position: SpinePosition, label: &'static str },
    None { reason: NoGuidanceReason },
}

/// The level identification's answer for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LevelResult {
    #[serde(flatten)]
    pub guidance: LevelGuidance,
    /// Smoothed probability of the class the logic acted on, 0..1.
    pub confidence: f32,
    pub direction: Direction,
    /// Probe motion along the spine since the previous frame, in mm
    /// (positive = cephalad); `None` when the frame has no pixel spacing.
    pub motion_mm: Option<Mm>,
    /// The same motion in pixels of the frame.
    pub motion_px: Px,
    /// Smoothed class probabilities: sacrum, lamina, interspace, off_spine.
    pub class_probs: [f32; 4],
    pub event: Option<LevelEvent>,
}

impl LevelResult {
    /// The position shown; `None` = no guidance.
    pub fn position(&self) -> Option<SpinePosition> {
        match self.guidance {
            LevelGuidance::Shown { position, .. } => Some(position),
            LevelGuidance::None { .. } => None,
        }
    }

    /// The label shown ("L4-L5"); `None` = no guidance.
    pub fn label(&self) -> Option<&'static str> {
        match self.guidance {
            LevelGuidance::Shown { label, .. } => Some(label),
            LevelGuidance::None { .. } => None,
        }
    }

    /// Why there is no guidance; `None` when a level is shown.
    pub fn no_guidance(&self) -> Option<NoGuidanceReason> {
        match self.guidance {
            LevelGuidance::Shown { .. } => None,
            LevelGuidance::None { reason } => Some(reason),
        }
    }

    /// Interspace index (0 = L5-S1) when a level is shown over an interspace.
    pub fn interspace_index(&self) -> Option<u8> {
        match self.position() {
            Some(SpinePosition::Interspace { index }) => Some(index),
            _ => None,
        }
    }
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
    /// The needle-target task's answer; `None` when the task is not running.
    pub target: Option<TargetResult>,
}

impl FrameResult {
    /// A result for the frame `meta` before any task has written its part.
    pub fn empty(meta: &crate::frame::FrameMeta) -> Self {
        Self { sequence: meta.sequence, timestamp_us: meta.timestamp_us, source_id: meta.source_id, latency_us: 0, level: None, target: None }
    }
}

/// Why the target task shows no target on a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoTargetReason {
    /// The plane head says the interlaminar target plane is not in view.
    PlaneNotVisible,
    /// The probe is off the back (no contact: no tissue echo in the image).
    ProbeOffBack,
    /// The heatmap is too spread out to trust its peak.
    LowConfidence,
    /// The plane came back: waiting for consistent frames before showing a target again.
    Settling,
    /// The model could not run on this frame.
    InferenceFailed,
}

/// Why millimetre outputs are absent (pixel outputs stay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MmUnavailable {
    /// Neither the source nor the board's probe calibration gives a pixel spacing.
    NoPixelSpacing,
}

/// Whether a target is shown on this frame: the point, or no target with the
/// reason, never both (serialized flat into [`TargetResult`]:
/// `"guidance": "shown", "target": {…}` or `"guidance": "none", "reason": …`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "guidance", rename_all = "snake_case")]
pub enum TargetGuidance {
    Shown { target: TargetPoint },
    None { reason: NoTargetReason },
}

/// What the needle finder concluded, with the needle when one was found
/// (serialized as `"needle": {"state": "found", "tip_x_px": …}` or `{"state": "none"}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Needle {
    /// No needle-like line in the image (an out-of-plane dot is not a needle).
    None,
    /// One in-plane needle.
    Found(NeedleResult),
    /// Two or more needle-like lines and no way to tell which is the needle: none is reported.
    Ambiguous,
    /// The finder did not run (no usable image region, no needle outputs, or no spacing for the image finder).
    NotRun,
}

impl Needle {
    /// The needle, when one was found.
    pub fn found(&self) -> Option<&NeedleResult> {
        match self {
            Needle::Found(n) => Some(n),
            _ => None,
        }
    }
}

/// The needle-target localisation for one frame.
///
/// Pixel coordinates are in the captured frame (screen px, pixel centres at
/// integers, x right, y down). Depth is measured from the skin line (the top
/// row of the image region) down; lateral offset from the image region's
/// vertical midline, positive = image right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetResult {
    /// The filtered target, or no target with the reason.
    #[serde(flatten)]
    pub guidance: TargetGuidance,
    /// This frame's own heatmap decode, before the plane and confidence tests
    /// and the temporal filter: for evaluation and logs, never for display.
    pub measured: Option<TargetPoint>,
    /// Probability that the target plane is visible, this frame (0..1).
    pub plane_prob: f32,
    /// Heatmap concentration: softmax mass near the peak, this frame (0..1).
    pub confidence: f32,
    /// What the needle finder concluded (independent of whether a target is shown).
    pub needle: Needle,
    /// Set when the millimetre fields are absent, with the reason.
    pub mm_unavailable: Option<MmUnavailable>,
    /// The projected needle path passes within the board's tolerance of the
    /// shown target, ahead of the tip. False whenever there is no target or no needle.
    pub on_target: bool,
    pub event: Option<TargetEvent>,
    /// The image region the target and needle were found in (skin line = its top row).
    pub image_region: crate::frame::RegionPx,
}

impl TargetResult {
    /// The shown target; `None` = no target.
    pub fn target(&self) -> Option<TargetPoint> {
        match self.guidance {
            TargetGuidance::Shown { target } => Some(target),
            TargetGuidance::None { .. } => None,
        }
    }

    /// Why no target is shown; `None` when one is.
    pub fn no_target(&self) -> Option<NoTargetReason> {
        match self.guidance {
            TargetGuidance::Shown { .. } => None,
            TargetGuidance::None { reason } => Some(reason),
        }
    }
}

/// A target point in frame pixels and, when the spacing is known, millimetres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TargetPoint {
    pub x_px: Px,
    pub y_px: Px,
    /// Depth below the skin line, pixels of the frame.
    pub depth_px: Px,
    /// Offset from the image midline, pixels (positive = image right).
    pub lateral_px: Px,
    pub depth_mm: Option<Mm>,
    pub lateral_mm: Option<Mm>,
}

/// An in-plane needle: its axis, tip and projected path relative to the target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NeedleResult {
    pub tip_x_px: Px,
    pub tip_y_px: Px,
    /// Where the visible shaft starts (the skin or image-edge side).
    pub entry_x_px: Px,
    pub entry_y_px: Px,
    /// Image-axis angle of entry -> tip, atan2(dy, dx) in degrees, y down.
    pub angle_deg: Deg,
    /// Tip depth below the skin line.
    pub tip_depth_px: Px,
    pub tip_depth_mm: Option<Mm>,
    /// Straight-line distance from the tip to the shown target.
    pub tip_to_target_px: Option<Px>,
    pub tip_to_target_mm: Option<Mm>,
    /// Closest approach of the path extrapolated beyond the tip to the target
    /// (perpendicular distance when the target lies ahead of the tip, else
    /// the tip-to-target distance).
    pub miss_distance_px: Option<Px>,
    pub miss_distance_mm: Option<Mm>,
    /// The target lies ahead of the tip along the path.
    pub target_ahead: Option<bool>,
    /// How needle-like the line is (0..1): entry at the skin side, tip echo, comet tail.
    pub score: f32,
}

/// Changes worth telling the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TargetEvent {
    TargetAcquired,
    TargetLost { reason: NoTargetReason },
    NeedleOnTarget,
    NeedleOffTarget,
}
