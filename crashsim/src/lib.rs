//! crashsim: explore every crash of a workload over a `mappedpages` pager and check the
//! invariants of SPEC.md.
//!
//! A [`Scenario`] runs a workload on a `Pager<P, SimStorage>` and records, after every operation
//! that returned `Ok`, the model of what is acknowledged. The explorer then replays every prefix
//! of the workload's sync sequence: for each sync it builds the images a crash just before that
//! sync can leave (the durable image plus every subset of the sectors in flight, exhaustively up to
//! a bound and by seeded sample beyond, at sector sizes 512 and 4096, with the old and the new file
//! length), recovers each, and asks the scenario to check the recovered pager against the model
//! acknowledged at that point and the one in flight. It also crashes recovery itself, chains
//! crash → recover → more operations → crash, fails every sync and every growth, and corrupts
//! single pages of the durable image and of the image recovery leaves after a crash.
//!
//! # Checking your own invariants
//!
//! A storage engine built on mappedpages implements [`Scenario`] for its own model. Here, a toy
//! "engine" keeps one record per page and writes `record → page` durably with `sync_page`; the
//! invariant is that every acknowledged record is still allocated and holds its bytes:
//!
//! ```
//! use std::collections::BTreeMap;
//! use crashsim::{Allowed, Config, Finding, Invariant, Matched, Recorder, Scenario, explore};
//! use mappedpages::{Pager, PageId, SimStorage};
//!
//! struct Records;
//!
//! impl Scenario<1024> for Records {
//!     type Model = BTreeMap<u64, u8>; // page -> the byte stored in it
//!
//!     fn name(&self) -> String {
//!         "toy-records".into()
//!     }
//!
//!     fn initial_model(&self) -> Self::Model {
//!         BTreeMap::new()
//!     }
//!
//!     fn run(
//!         &self,
//!         pager: &mut Pager<1024, SimStorage>,
//!         rec: &mut Recorder<Self::Model>,
//!     ) -> Result<(), Finding> {
//!         let mut model = self.initial_model();
//!         for value in 1..=4u8 {
//!             // Write the record into a fresh page, make it durable, then acknowledge.
//!             let Ok(id) = pager.alloc() else { return Ok(()) };
//!             let Ok(page) = id.get_mut(pager) else { return Ok(()) };
//!             page.as_bytes_mut().fill(value);
//!             if pager.sync_page(id).is_err() {
//!                 return Ok(()); // poisoned: nothing more can be acknowledged
//!             }
//!             model.insert(id.raw(), value);
//!             rec.ack(pager, model.clone());
//!         }
//!         Ok(())
//!     }
//!
//!     fn check(
//!         &self,
//!         pager: &Pager<1024, SimStorage>,
//!         allowed: &Allowed<'_, Self::Model>,
//!     ) -> Result<Matched, Finding> {
//!         // Every acknowledged record survives with its contents.
//!         for (&page, &value) in allowed.acknowledged {
//!             let id = PageId::<1024>::from_raw(page);
//!             let bytes = id
//!                 .get(pager)
//!                 .map_err(|e| Finding::new(Invariant::Durable, format!("record page {page} lost: {e}")))?;
//!             if bytes.as_bytes().iter().any(|&b| b != value) {
//!                 return Err(Finding::new(Invariant::Durable, format!("record page {page} changed")));
//!             }
//!         }
//!         Ok(Matched::Acknowledged)
//!     }
//! }
//!
//! let outcome = explore(&Records, &Config::quick());
//! assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
//! assert!(outcome.states > 100);
//! ```
//!
//! # Judging one state
//!
//! The explorer's judge is public for crash states made elsewhere (the `recovery` fuzz target
//! uses it): [`check_image`] opens one image and judges it exactly as the explorer judges every
//! recovered state (opens, well-formed, [`Scenario::check`], a panic is INV-9), against the
//! models [`allowed_at`] gives for the crash point; [`replay`] reruns one [`Case`] of a
//! workload, keeping any sectors (not only those the explorer enumerates), with the checks its
//! kind adds; [`media_damages`] lists what the media phases damage.
#![deny(missing_docs)]

pub mod alloc_model;
pub mod cli;
pub mod concurrent_model;
mod explore;
mod identity;
mod invariant;
pub mod protected_model;
pub mod subsets;
pub mod workloads;

pub use explore::{
    Case, Config, Keeps, Length, MediaDamage, NotEvaluated, Outcome, Phases, Reproducer, Violation,
    allowed_at, check_image, explore, media_damages, replay,
};
pub use invariant::Invariant;
pub use workloads::{Workload, workload};

use std::fmt;

use mappedpages::{CommitMode, MappedPageError, Pager, SimStorage};

/// A finding: which invariant of SPEC.md §6 a check saw broken, and how.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// The invariant (`Display`: `INV-n`; in a JSON report, its number).
    pub invariant: Invariant,
    /// What was seen.
    pub message: String,
}

impl Finding {
    /// A finding against `invariant`.
    pub fn new(invariant: Invariant, message: impl Into<String>) -> Finding {
        Finding {
            invariant,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.message)
    }
}

/// What a recovered state is allowed to be at a crash point.
#[derive(Debug)]
pub struct Allowed<'a, M> {
    /// The model after the last operation acknowledged before the crash.
    pub acknowledged: &'a M,
    /// The model after the operation in flight at the crash, if one was.
    pub in_flight: Option<&'a M>,
}

/// Which allowed model a recovered state matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matched {
    /// The last acknowledged one.
    Acknowledged,
    /// The one in flight.
    InFlight,
}

/// Records, during a workload, what was acknowledged when.
#[derive(Debug)]
pub struct Recorder<M> {
    acks: Vec<(u64, M)>,
    finding: Option<Finding>,
}

impl<M: Clone> Recorder<M> {
    /// An empty recorder, for running a [`Scenario`] outside the explorer (the explorer makes
    /// its own).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Recorder<M> {
        Recorder {
            acks: Vec::new(),
            finding: None,
        }
    }

    /// Call after an operation returned `Ok`, with the model that now holds.
    pub fn ack<const P: usize>(&mut self, pager: &Pager<P, SimStorage>, model: M) {
        self.acks.push((pager.storage().sync_count(), model));
    }

    /// Records that `model` holds once the storage has completed `sync_count` syncs, for a
    /// workload that learns only afterwards which sync made what durable (the concurrent one,
    /// [`concurrent_model`], acknowledges "commit `D` durable" at `c0 + D·s` once its threads
    /// joined). Same meaning as [`ack`](Self::ack) at that sync count: calls must come in
    /// non-decreasing `sync_count` order, after the acknowledgements already recorded.
    pub fn ack_at_sync(&mut self, sync_count: u64, model: M) {
        debug_assert!(
            self.acks.last().is_none_or(|(last, _)| *last <= sync_count),
            "acknowledgements out of sync order"
        );
        self.acks.push((sync_count, model));
    }

    /// Call after an operation returned an error. Checks INV-7: a pager that is not poisoned
    /// after a failure must hold in memory the allocation state that is durable (its regular
    /// pages, its protected pages and what they read).
    pub fn failed<const P: usize>(
        &mut self,
        pager: &Pager<P, SimStorage>,
        error: &MappedPageError,
    ) {
        if pager.is_poisoned() || self.finding.is_some() {
            return;
        }
        let durable = SimStorage::from_image(pager.storage().durable_image());
        let finding = match Pager::<P, SimStorage>::open_in(durable) {
            Ok(recovered) => {
                let in_memory: Vec<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
                let on_disk: Vec<u64> = recovered
                    .iter_allocated_pages()
                    .map(|id| id.raw())
                    .collect();
                if in_memory != on_disk {
                    Some(Finding::new(
                        Invariant::Failures,
                        format!(
                            "after `{error}` the pager is not poisoned, but memory holds {} allocated pages and the disk {}",
                            in_memory.len(),
                            on_disk.len()
                        ),
                    ))
                } else {
                    protected_difference(pager, &recovered).map(|difference| {
                        Finding::new(
                            Invariant::Failures,
                            format!("after `{error}` the pager is not poisoned, but {difference}"),
                        )
                    })
                }
            }
            Err(open_error) => Some(Finding::new(
                Invariant::Opens,
                format!("after `{error}` the durable image does not open: {open_error}"),
            )),
        };
        self.finding = finding;
    }

    /// The acknowledgements so far: (sync count at the time, model).
    pub fn acks(&self) -> &[(u64, M)] {
        &self.acks
    }
}

/// How the protected pages of `in_memory` differ from those of `on_disk` (ids, or the content a
/// read gives), if they do.
fn protected_difference<const P: usize>(
    in_memory: &Pager<P, SimStorage>,
    on_disk: &Pager<P, SimStorage>,
) -> Option<String> {
    let memory_ids: Vec<_> = in_memory.iter_allocated_protected_pages().collect();
    let disk_ids: Vec<_> = on_disk.iter_allocated_protected_pages().collect();
    if memory_ids != disk_ids {
        return Some(format!(
            "memory holds {} protected pages and the disk {}",
            memory_ids.len(),
            disk_ids.len()
        ));
    }
    memory_ids.into_iter().find_map(|id| {
        let memory = id.get(in_memory).map(|page| page.as_bytes());
        let disk = id.get(on_disk).map(|page| page.as_bytes());
        match (memory, disk) {
            (Ok(memory), Ok(disk)) if memory == disk => None,
            (Ok(_), Ok(_)) => Some(format!(
                "protected page {} reads differently in memory and on disk",
                id.raw()
            )),
            (memory, disk) => Some(format!(
                "protected page {} reads {} in memory and {} on disk",
                id.raw(),
                memory.map_or_else(|e| e.to_string(), |_| "fine".to_string()),
                disk.map_or_else(|e| e.to_string(), |_| "fine".to_string()),
            )),
        }
    })
}

/// A workload plus the checks of its model, explored by [`explore`](fn@explore).
pub trait Scenario<const P: usize>: Sync {
    /// What the workload has been promised (for example the set of allocated pages).
    type Model: Clone + Send + Sync + fmt::Debug;

    /// A stable name (used in reports and reproducers).
    fn name(&self) -> String;

    /// One line saying what the workload does (the CLI's `--list`). Empty unless overridden.
    fn description(&self) -> String {
        String::new()
    }

    /// The seed the workload was generated from (0 for fixed workloads).
    fn seed(&self) -> u64 {
        0
    }

    /// How the pager commits while the workload runs. The explorer sets it on every pager it
    /// creates or reopens for [`run`](Self::run) and [`resume`](Self::resume), and judges media
    /// damage by that mode's promises: under [`CommitMode::SingleSync`] a damaged page may roll
    /// the last commit back (SPEC.md §3.2.1). [`CommitMode::Flip`] unless overridden.
    fn commit_mode(&self) -> CommitMode {
        CommitMode::Flip
    }

    /// The model of a freshly created file.
    fn initial_model(&self) -> Self::Model;

    /// Runs the workload on `pager`, calling [`Recorder::ack`] after each acknowledged operation
    /// and [`Recorder::failed`] after each failed one (or [`Recorder::ack_at_sync`] once it knows
    /// which sync made what durable). Stop when the pager is poisoned. Return a finding if an
    /// operation itself breaks an invariant (for example, hands out an owned page).
    fn run(
        &self,
        pager: &mut Pager<P, SimStorage>,
        rec: &mut Recorder<Self::Model>,
    ) -> Result<(), Finding>;

    /// Continues after a recovery that found `model` (crash → recover → more operations → crash).
    /// The default does nothing.
    fn resume(
        &self,
        pager: &mut Pager<P, SimStorage>,
        rec: &mut Recorder<Self::Model>,
        model: &Self::Model,
    ) -> Result<(), Finding> {
        let _ = (pager, rec, model);
        Ok(())
    }

    /// Checks a recovered pager against what is allowed.
    fn check(
        &self,
        pager: &Pager<P, SimStorage>,
        allowed: &Allowed<'_, Self::Model>,
    ) -> Result<Matched, Finding>;
}

/// An INV-9 finding for a caught panic (`panic`, as `catch_unwind` or a thread's `join` gives
/// it): `{what}: {the panic's message}`.
pub(crate) fn panic_finding(panic: Box<dyn std::any::Any + Send>, what: &str) -> Finding {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic".to_string());
    Finding::new(Invariant::MalformedInput, format!("{what}: {message}"))
}

/// The suffix a workload's name gets in `mode` (`""` for [`CommitMode::Flip`]).
pub fn commit_mode_suffix(mode: CommitMode) -> &'static str {
    match mode {
        CommitMode::SingleSync => "+single-sync",
        _ => "",
    }
}
