//! How a V4L2 device is named in a board file or on the command line: a
//! node path, or a card name looked up again on every (re)open. Used by the
//! capture source and the video-output sink alike.

use std::path::PathBuf;

use super::v4l2::{self, V4l2Error};

/// Which device: a node path, or a card name looked up on every (re)open
/// (a replugged grabber may come back as another `/dev/videoN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Path(PathBuf),
    Card(String),
}

impl DeviceSpec {
    /// `/dev/video0`, `card=vivid`, or a bare name (`vivid`) taken as a card name.
    pub fn parse(s: &str) -> DeviceSpec {
        let s = s.trim();
        if let Some(card) = s.strip_prefix("card=") {
            DeviceSpec::Card(card.to_string())
        } else if s.starts_with('/') || s.starts_with('.') {
            DeviceSpec::Path(PathBuf::from(s))
        } else {
            DeviceSpec::Card(s.to_string())
        }
    }

    pub fn resolve(&self, want_output: bool) -> Result<PathBuf, V4l2Error> {
        match self {
            DeviceSpec::Path(p) => Ok(p.clone()),
            DeviceSpec::Card(c) => v4l2::find_by_card(c, want_output),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
            DeviceSpec::Card(c) => write!(f, "card={c}"),
        }
    }
}

