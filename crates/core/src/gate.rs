//! Gate operations: cameras with a direction and a lane, the ISO 6346
//! size-type code, and the yard a container enters and leaves.
//!
//! A camera is configured as `in`, `out` or `none`; a passage takes its
//! camera's direction. [`movement`] is the pure rule for the yard: an `in`
//! passage puts its container in the yard, an `out` passage takes it out
//! and records how long it stayed. What does not add up (an out for a
//! container not in the yard, a second in without an out) is flagged on
//! the passage, never refused: the truck was really there.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::passage::{Direction, Flags, Passage};

/// One configured camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The `camera_id` reads carry.
    pub id: String,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub lane: Option<String>,
}

/// The configured cameras by id; a camera not listed has direction `none`
/// and no lane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cameras(HashMap<String, CameraConfig>);

impl Cameras {
    /// Builds the map, refusing an empty or repeated id (named).
    pub fn new(list: &[CameraConfig]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (i, c) in list.iter().enumerate() {
            if c.id.trim().is_empty() {
                return Err(format!("cameras[{i}].id must not be empty"));
            }
            if map.insert(c.id.clone(), c.clone()).is_some() {
                return Err(format!("cameras[{i}].id {:?} is listed twice", c.id));
            }
        }
        Ok(Self(map))
    }

    /// The direction and lane of a read from `camera_id`.
    pub fn place(&self, camera_id: Option<&str>) -> (Direction, Option<String>) {
        camera_id
            .and_then(|id| self.0.get(id))
            .map(|c| (c.direction, c.lane.clone()))
            .unwrap_or((Direction::None, None))
    }
}

/// Whether `code` is an ISO 6346 size-type code: a length character and a
/// height-and-width character, then a type group letter and a digit, such
/// as `22G1` or `45R1`.
pub fn iso_type_valid(code: &str) -> bool {
    let b = code.as_bytes();
    if b.len() != 4 {
        return false;
    }
    let length = matches!(b[0], b'1'..=b'4' | b'B'..=b'H' | b'K'..=b'N' | b'P');
    let height = matches!(
        b[1],
        b'0' | b'2' | b'4' | b'5' | b'6' | b'8' | b'9' | b'C'..=b'F' | b'L'..=b'N' | b'P'
    );
    let group = matches!(
        b[2],
        b'G' | b'V' | b'B' | b'S' | b'R' | b'H' | b'U' | b'P' | b'T' | b'A' | b'K' | b'N'
    );
    length && height && group && b[3].is_ascii_digit()
}

/// A container in the yard: the passage that brought it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YardEntry {
    pub passage_id: Uuid,
    pub gate_in_at: DateTime<Utc>,
}

/// What a movement does to the yard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YardChange {
    /// Nothing (a passage without a direction).
    None,
    /// The container is in the yard from this passage on (replacing an
    /// earlier stay that had no gate-out).
    Enter(YardEntry),
    /// The container's stay, begun by `passage_id`, has ended.
    Leave { passage_id: Uuid },
}

/// Applies the yard rule to a passage that just opened (or changed its
/// number), given the container's current stay if it has one. Sets the
/// passage's `dwell_secs` and flags, and says what changes in the yard.
pub fn movement(passage: &mut Passage, stay: Option<&YardEntry>) -> YardChange {
    match passage.direction {
        Direction::None => YardChange::None,
        Direction::In => {
            if stay.is_some_and(|s| s.passage_id != passage.id) {
                passage.flags.insert(Flags::IN_WHILE_IN);
            }
            YardChange::Enter(YardEntry {
                passage_id: passage.id,
                gate_in_at: passage.captured_at,
            })
        }
        Direction::Out => match stay {
            Some(s) => {
                passage.flags.remove(Flags::OUT_WITHOUT_IN);
                passage.dwell_secs =
                    Some((passage.captured_at - s.gate_in_at).num_seconds().max(0));
                YardChange::Leave {
                    passage_id: s.passage_id,
                }
            }
            None => {
                passage.flags.insert(Flags::OUT_WITHOUT_IN);
                YardChange::None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_type_codes() {
        for ok in ["22G1", "45G1", "42R1", "L5G1", "22T6", "45U1"] {
            assert!(iso_type_valid(ok), "{ok}");
        }
        for bad in ["", "22G", "22G1X", "2XG1", "22XX", "A2G1", "22g1", "22GA"] {
            assert!(!iso_type_valid(bad), "{bad}");
        }
    }

    #[test]
    fn cameras_place_reads_and_refuse_repeats() {
        let cams = Cameras::new(&[CameraConfig {
            id: "gate-1-in".into(),
            direction: Direction::In,
            lane: Some("1".into()),
        }])
        .unwrap();
        assert_eq!(
            cams.place(Some("gate-1-in")),
            (Direction::In, Some("1".into()))
        );
        assert_eq!(cams.place(Some("other")), (Direction::None, None));
        assert_eq!(cams.place(None), (Direction::None, None));
        let twice = vec![
            CameraConfig {
                id: "a".into(),
                direction: Direction::In,
                lane: None,
            };
            2
        ];
        assert!(Cameras::new(&twice).unwrap_err().contains("cameras[1]"));
    }
}
