//! One crash state, named precisely enough to rerun it ([`Case`], [`Reproducer`]), and what
//! exploring finds ([`Violation`], [`Outcome`], [`NotEvaluated`]).

use std::time::Duration;

use mappedpages::CrashLength;
use serde::{Deserialize, Serialize};

use crate::Finding;

/// The file length a crash image keeps (serializable form of [`CrashLength`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Length {
    /// The last durable length.
    Durable,
    /// The current length.
    Current,
}

impl From<Length> for CrashLength {
    fn from(length: Length) -> CrashLength {
        match length {
            Length::Durable => CrashLength::Durable,
            Length::Current => CrashLength::Current,
        }
    }
}

/// How a failed sync treats its dirty sectors (serializable form of [`FailedSyncKeeps`](mappedpages::FailedSyncKeeps)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Keeps {
    /// None reach the disk.
    Nothing,
    /// All reach the disk.
    Everything,
    /// A subset drawn from the sync index.
    Seeded,
}

/// One crash state, precisely enough to rerun it alone with [`replay`](crate::replay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Case {
    /// A crash just before sync `sync` of the workload (`sync` = number of syncs, for after the
    /// last), keeping the in-flight sectors `kept` (in units of `sector` bytes).
    Crash {
        /// Index of the sync the crash precedes.
        sync: u64,
        /// Sector size in bytes.
        sector: u64,
        /// File length kept.
        length: Length,
        /// Sector indices kept.
        kept: Vec<u64>,
    },
    /// As `Crash`, then a crash before sync `recovery_sync` of recovery itself (512-byte sectors,
    /// current length).
    RecoveryCrash {
        /// Index of the workload sync the first crash precedes.
        sync: u64,
        /// Sector size of the first crash.
        sector: u64,
        /// File length of the first crash.
        length: Length,
        /// Sectors kept by the first crash.
        kept: Vec<u64>,
        /// Index of the recovery sync the second crash precedes.
        recovery_sync: u64,
        /// Sectors kept by the second crash.
        recovery_kept: Vec<u64>,
    },
    /// A crash before sync `sync` (512-byte sectors, current length, keeping none or all), then
    /// recovery, the scenario's continuation, and a crash before its sync `second_sync`.
    Chain {
        /// Index of the workload sync the first crash precedes.
        sync: u64,
        /// Whether the first crash kept every in-flight sector.
        kept_all: bool,
        /// Index of the continuation sync the second crash precedes.
        second_sync: u64,
        /// File length of the second crash.
        second_length: Length,
        /// Sectors kept by the second crash.
        second_kept: Vec<u64>,
    },
    /// Sync `sync` fails; the workload goes on as far as the pager lets it; then a crash keeps
    /// none or all of the sectors in flight.
    FailedSync {
        /// Index of the failing sync.
        sync: u64,
        /// What the failing sync made durable.
        keeps: Keeps,
        /// Whether the final crash kept every in-flight sector.
        kept_all: bool,
        /// File length of the final crash.
        length: Length,
    },
    /// Growth `growth` fails; the workload goes on; then the durable image is recovered.
    FailedGrowth {
        /// Index of the failing growth.
        growth: u64,
    },
    /// The durable image before sync `sync`, with byte `offset` of page `page` bit-flipped (or,
    /// with `zero_sector`, the 512-byte sector holding it zeroed).
    Media {
        /// Index of the sync.
        sync: u64,
        /// Page corrupted.
        page: u64,
        /// Byte offset in the page.
        offset: u64,
        /// Zero the sector instead of flipping a bit.
        zero_sector: bool,
    },
    /// As `Crash`, then the image recovery left (its repairs included) damaged as `Media`
    /// damages a durable image.
    CrashMedia {
        /// Index of the sync the crash precedes.
        sync: u64,
        /// Sector size in bytes.
        sector: u64,
        /// File length kept.
        length: Length,
        /// Sector indices kept.
        kept: Vec<u64>,
        /// Page corrupted after recovery.
        page: u64,
        /// Byte offset in the page.
        offset: u64,
        /// Zero the sector instead of flipping a bit.
        zero_sector: bool,
    },
}

impl Case {
    /// How simple the state is to look at, smallest first: (kind, kept sectors). Plain crashes
    /// come first, then crashes of recovery, failed syncs and growths, chains, media damage;
    /// within a kind, fewer kept sectors first. Reports keep and show violations in this order.
    pub fn simplicity(&self) -> (u8, usize) {
        match self {
            Case::Crash { kept, .. } => (0, kept.len()),
            Case::RecoveryCrash {
                kept,
                recovery_kept,
                ..
            } => (1, kept.len() + recovery_kept.len()),
            Case::FailedSync { .. } => (2, 0),
            Case::FailedGrowth { .. } => (3, 0),
            Case::Chain { second_kept, .. } => (4, second_kept.len()),
            Case::Media { .. } => (5, 0),
            Case::CrashMedia { kept, .. } => (6, kept.len()),
        }
    }

    /// The fields of a [`Case::Crash`]: (sync, sector, length, kept); `None` for another kind.
    pub(super) fn as_crash(&self) -> Option<(&u64, &u64, &Length, &Vec<u64>)> {
        match self {
            Case::Crash {
                sync,
                sector,
                length,
                kept,
            } => Some((sync, sector, length, kept)),
            _ => None,
        }
    }
}

/// Everything needed to rerun one crash state: `crashsim --replay '<json>'`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reproducer {
    /// Workload name.
    pub workload: String,
    /// Workload seed.
    pub seed: u64,
    /// The deliberately broken protocol variant that was active (`--mutant`), if any: a replay
    /// activates it again (which needs the `mutants` feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutant: Option<String>,
    /// The crash state.
    pub case: Case,
}

/// One broken invariant, with its reproducer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Violation {
    /// What broke.
    pub finding: Finding,
    /// How to see it again.
    pub repro: Reproducer,
}

impl Violation {
    /// The reproducer as one line of JSON (what `--replay` takes).
    pub fn reproducer_json(&self) -> String {
        // A `Reproducer` holds only strings, numbers and enums: encoding it cannot fail.
        serde_json::to_string(&self.repro).unwrap_or_else(|e| format!("<unencodable: {e}>"))
    }
}

impl std::fmt::Display for Violation {
    /// The finding, then `    reproducer: <json>` (replay it with the binary that found it:
    /// `<binary> --replay '<json>'`, or with [`replay_json`](crate::replay_json)).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n    reproducer: {}",
            self.finding,
            self.reproducer_json()
        )
    }
}

/// What exploring one workload found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// Workload name.
    pub workload: String,
    /// Workload seed.
    pub seed: u64,
    /// Syncs in the workload (including the create).
    pub syncs: u64,
    /// Crash states recovered and checked.
    pub states: u64,
    /// Violations found (all of them counted; 32 kept).
    pub violation_count: u64,
    /// The simplest violations found, at most 32, simplest first ([`Case::simplicity`]: plain
    /// crashes first, fewer kept sectors first); `violation_count` says how many there were.
    pub violations: Vec<Violation>,
    /// Wall time (in JSON: `elapsed_seconds`, seconds as a number, like the report's total).
    #[serde(rename = "elapsed_seconds", with = "seconds")]
    pub elapsed: Duration,
    /// The budget or deadline ran out before everything was explored.
    pub truncated: bool,
}

/// A [`Duration`] as a number of seconds, in JSON.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

/// [`replay`](crate::replay) found no state of the workload matching the case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotEvaluated {
    /// Workload name.
    pub workload: String,
    /// The case.
    pub case: Case,
}

impl std::fmt::Display for NotEvaluated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let case = serde_json::to_string(&self.case).map_err(|_| std::fmt::Error)?;
        write!(
            f,
            "{} has no crash state {case}, nothing was checked (a sync, growth, recovery sync or \
             continuation sync out of range, a failure or damage before the create completed, a \
             sector size not explored, a recovery that writes nothing, a chain whose root holds \
             no file, a page and byte the media phase does not damage, or damage after a crash \
             whose recovery took the acknowledged commit and that is no chain root)",
            self.workload
        )
    }
}

impl std::error::Error for NotEvaluated {}
