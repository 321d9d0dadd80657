//! What to explore: the phases ([`Phases`]) and the budget ([`Config`]).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use mappedpages::SectorSize;
use serde::{Deserialize, Serialize};

/// Which kinds of crash states to explore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phases {
    /// Crash before every sync of the workload, with every (or a sampled) subset of the sectors
    /// in flight, at every configured sector size and both file lengths.
    pub crashes: bool,
    /// Crash during recovery's own writes, then recover again (INV-6).
    pub recovery_crashes: bool,
    /// Crash, recover, run more operations, crash again.
    pub chains: bool,
    /// Fail every sync (keeping none, all, or a seeded subset of its sectors).
    pub failed_syncs: bool,
    /// Fail every growth.
    pub failed_growth: bool,
    /// Flip a bit in (or zero a sector of) one internal page of a durable image: the superblock,
    /// a metadata copy, a bitmap slot or a directory slot page. A typed error or an allowed state
    /// (INV-8); for the superblock and directory pages, which are redundant, an allowed state
    /// only (INV-13).
    pub media: bool,
    /// Damage, as `media` does, the recovered image of every crash state whose recovery chose
    /// the commit in flight and of every chain root (each distinct recovered image once): the
    /// repairs recovery made must leave the file as redundant as a commit that completed
    /// (INV-13), a damaged non-redundant page gives a typed error or the recovered state
    /// (INV-8). Runs inside the crash phase's enumeration, whose crash states it also explores.
    pub crash_media: bool,
}

impl Phases {
    /// Every phase.
    pub fn all() -> Phases {
        Phases {
            crashes: true,
            recovery_crashes: true,
            chains: true,
            failed_syncs: true,
            failed_growth: true,
            media: true,
            crash_media: true,
        }
    }

    /// No phase: [`explore`](fn@crate::explore) only runs the workload once (the checks its run makes still
    /// report). Turn single phases on from here.
    pub fn none() -> Phases {
        Phases {
            crashes: false,
            recovery_crashes: false,
            chains: false,
            failed_syncs: false,
            failed_growth: false,
            media: false,
            crash_media: false,
        }
    }
}

/// How much to explore.
#[derive(Clone, Debug)]
pub struct Config {
    /// Sector sizes to tear at.
    pub sector_sizes: Vec<SectorSize>,
    /// In-flight sets of at most this many sectors are explored exhaustively (2^n subsets).
    pub exhaustive_bits: u32,
    /// Extra seeded random subsets for larger in-flight sets (beyond the named patterns).
    pub extra_samples: usize,
    /// Seed of the subset sampling.
    pub seed: u64,
    /// Stop after this many crash states (the outcome says it was truncated).
    pub max_states: u64,
    /// Stop at this instant (the outcome says it was truncated).
    pub deadline: Option<Instant>,
    /// Stop at the first violation.
    pub stop_at_first_violation: bool,
    /// What to explore.
    pub phases: Phases,
    /// Incremented once per crash state checked (for progress bars).
    pub progress: Option<Arc<AtomicU64>>,
}

impl Config {
    /// Everything, at both sector sizes, with a large budget.
    pub fn thorough() -> Config {
        Config {
            sector_sizes: vec![SectorSize::S512, SectorSize::S4096],
            exhaustive_bits: 14,
            extra_samples: 256,
            seed: 0,
            max_states: u64::MAX,
            deadline: None,
            stop_at_first_violation: false,
            phases: Phases::all(),
            progress: None,
        }
    }

    /// Everything, with a smaller sample of large in-flight sets: for tests and doc examples.
    pub fn quick() -> Config {
        Config {
            exhaustive_bits: 8,
            extra_samples: 16,
            ..Config::thorough()
        }
    }
}
