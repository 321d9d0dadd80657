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
//! # Crash-test your own engine
//!
//! An engine built on mappedpages implements [`Scenario`] for its own model, and proves its own
//! guarantees the way mappedpages proves its own. The whole loop, on a small append-only log
//! (the repository's `examples/tinykv/` is the same engine, with its crash test, a planted bug
//! the test catches, and a command-line binary):
//!
//! 1. [`Scenario::run`] owns the pager for the run: the engine opens on it, runs a workload,
//!    calls [`Recorder::ack`] with the model after every operation that returned `Ok`
//!    ([`Recorder::failed`] after one that failed), and hands the pager back.
//! 2. crashsim crashes before every sync of that run (and crashes recovery, chains crash →
//!    recover → [`Scenario::resume`] → crash, fails syncs and growths, damages pages) and
//!    recovers each image.
//! 3. [`Scenario::check`] gets each recovered pager; [`Recovered::to_pager`] gives an owned one
//!    on which the engine runs its own open path, repairs included, and the check compares what
//!    the engine reads with the model acknowledged at the crash (or the one in flight).
//!    Findings carry the engine's own invariant names ([`Invariant::user`]).
//!
//! **Crash points.** Every sync the pager issues is one (`alloc`, `free`, a protected page's
//! `commit`, `sync_page`, `sync_all`): the points between the engine's own steps are the syncs
//! it makes. Below, `append` is "write a record page, `sync_page` it, commit the root that
//! names it", so crashsim crashes between the record and the root; swap the last two steps and
//! the states where the root names a lost record show up as `LOG-2` findings.
//!
//! ```
//! use crashsim::{Allowed, Config, Finding, Invariant, Matched, Recorder, Recovered, Scenario};
//! use mappedpages::{MappedPageError, PageId, Pager, ProtectedPageId, SimStorage, Storage};
//!
//! /// The engine: one record per page; the root (a protected page) lists the record pages:
//! /// bytes 0..8 the count, then one u64 page id each.
//! struct Log<S: Storage> {
//!     pager: Pager<1024, S>,
//!     root: ProtectedPageId<1024>,
//!     pages: Vec<u64>,
//! }
//!
//! impl<S: Storage> Log<S> {
//!     /// Finds the root (or makes one), reads the list, frees pages no root names (leaked by
//!     /// a crash between `alloc` and the root's commit). On an error, the pager comes back.
//!     fn open(mut pager: Pager<1024, S>) -> Result<Self, (MappedPageError, Pager<1024, S>)> {
//!         let root = match pager.iter_allocated_protected_pages().next() {
//!             Some(root) => root,
//!             None => match pager.alloc_protected() {
//!                 Ok(root) => root,
//!                 Err(e) => return Err((e, pager)),
//!             },
//!         };
//!         let pages = match root.get(&pager) {
//!             Ok(page) => decode(page.as_bytes()),
//!             Err(e) => return Err((e, pager)),
//!         };
//!         let leaked: Vec<PageId<1024>> = pager
//!             .iter_allocated_pages()
//!             .filter(|id| !pages.contains(&id.raw()))
//!             .collect();
//!         if !leaked.is_empty() {
//!             if let Err(e) = pager.free_bulk(leaked) {
//!                 return Err((e, pager));
//!             }
//!         }
//!         Ok(Log { pager, root, pages })
//!     }
//!
//!     fn append(&mut self, record: u8) -> Result<(), MappedPageError> {
//!         let id = self.pager.alloc()?;
//!         id.get_mut(&mut self.pager)?.as_bytes_mut().fill(record);
//!         self.pager.sync_page(id)?; // the record is durable ...
//!         let mut root = self.root.get_mut(&mut self.pager)?;
//!         let bytes = root.page_mut().as_bytes_mut();
//!         let n = self.pages.len();
//!         bytes[..8].copy_from_slice(&(n as u64 + 1).to_le_bytes());
//!         bytes[8 + 8 * n..16 + 8 * n].copy_from_slice(&id.raw().to_le_bytes());
//!         root.commit()?; // ... before the root names it
//!         self.pages.push(id.raw());
//!         Ok(())
//!     }
//!
//!     fn records(&self) -> Result<Vec<u8>, MappedPageError> {
//!         let first_byte = |&page: &u64| PageId::<1024>::from_raw(page).get(&self.pager);
//!         self.pages.iter().map(|p| first_byte(p).map(|page| page.as_bytes()[0])).collect()
//!     }
//! }
//!
//! /// The root's list (a root of zeros is an empty log; the count is clamped to what fits).
//! fn decode(root: &[u8]) -> Vec<u64> {
//!     let word = |at: usize| {
//!         let bytes = root.get(at..at + 8).and_then(|b| b.try_into().ok());
//!         bytes.map_or(0, u64::from_le_bytes)
//!     };
//!     let n = (word(0) as usize).min((root.len() - 8) / 8);
//!     (0..n).map(|i| word(8 + 8 * i)).collect()
//! }
//!
//! /// The crash test: append three records; the model is the records acknowledged.
//! struct Appends;
//!
//! impl Scenario<1024> for Appends {
//!     type Model = Vec<u8>;
//!
//!     fn name(&self) -> String {
//!         "log-appends".into()
//!     }
//!
//!     fn initial_model(&self) -> Vec<u8> {
//!         Vec::new()
//!     }
//!
//!     fn run(
//!         &self,
//!         pager: Pager<1024, SimStorage>,
//!         rec: &mut Recorder<Vec<u8>>,
//!     ) -> Result<Pager<1024, SimStorage>, Finding> {
//!         let mut log = match Log::open(pager) {
//!             Ok(log) => log,
//!             Err((_, pager)) => return Ok(pager), // an injected failure: nothing to check
//!         };
//!         let mut model = Vec::new();
//!         for record in 1..=3u8 {
//!             match log.append(record) {
//!                 Ok(()) => {
//!                     model.push(record);
//!                     rec.ack(&log.pager, model.clone());
//!                 }
//!                 Err(error) => {
//!                     rec.failed(&log.pager, &error);
//!                     if log.pager.is_poisoned() {
//!                         break;
//!                     }
//!                 }
//!             }
//!         }
//!         Ok(log.pager) // hand the pager back
//!     }
//!
//!     fn check(
//!         &self,
//!         recovered: &Recovered<'_, 1024>,
//!         allowed: &Allowed<'_, Vec<u8>>,
//!     ) -> Result<Matched, Finding> {
//!         let opens = || Invariant::user("LOG-1 the log opens after any crash");
//!         let log = Log::open(recovered.to_pager()?) // the engine's own open, repairs included
//!             .map_err(|(e, _)| Finding::new(opens(), e.to_string()))?;
//!         let records = log.records().map_err(|e| Finding::new(opens(), e.to_string()))?;
//!         if records == *allowed.acknowledged {
//!             Ok(Matched::Acknowledged)
//!         } else if allowed.in_flight == Some(&records) {
//!             Ok(Matched::InFlight)
//!         } else {
//!             Err(Finding::new(
//!                 Invariant::user("LOG-2 the log holds the acknowledged records"),
//!                 format!("read {records:?}, acknowledged {:?}", allowed.acknowledged),
//!             ))
//!         }
//!     }
//! }
//!
//! // In a #[test]: panics with a readable report (each violation with the line that replays
//! // it, `crashsim::replay_json`) if any crash state breaks LOG-1 or LOG-2.
//! let outcome = crashsim::check(&Appends, Config::quick());
//! assert!(outcome.states > 1000);
//! ```
//!
//! For the full command line over the same scenario (progress, table, `--list`, `--json`,
//! `--replay` of the reproducers it prints), a binary of the engine's calls
//! [`cli::main`]: `crashsim::cli::main(vec![crashsim::workload(Appends)])`.
//!
//! A crate outside this repository adds `crashsim` as a dev-dependency next to `mappedpages`
//! (same version of mappedpages: crashsim's `Pager<_, SimStorage>` must be the engine's). Its
//! dependencies are mappedpages, serde, serde_json and, with the default `parallel` feature,
//! rayon.
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
pub mod filled_model;
mod front;
mod identity;
mod invariant;
pub mod protected_model;
pub mod subsets;
pub mod workloads;

pub use explore::{
    Case, Config, Keeps, Length, MediaDamage, NotEvaluated, Outcome, Phases, Reproducer, Violation,
    allowed_at, check_image, explore, media_damages, replay,
};
pub use front::{ReplayError, check, replay_json};
pub use invariant::Invariant;
pub use workloads::{Workload, workload};

use std::fmt;

use mappedpages::{CommitMode, MappedPageError, Pager, SimStorage, Storage};

/// A finding: which invariant a check saw broken (one of SPEC.md §6, or one of yours:
/// [`Invariant::user`]), and how.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// The invariant (`Display`: `INV-n`, or your name for it; in a JSON report, its number, or
    /// your name).
    pub invariant: Invariant,
    /// What was seen.
    pub message: String,
}

impl Finding {
    /// A finding against `invariant`: `Finding::new(Invariant::Durable, "...")` for SPEC.md's,
    /// `Finding::new(Invariant::user("KV-1 acknowledged puts survive"), "...")` for yours.
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
    /// The pager's generation at each acknowledgement (`None` from
    /// [`ack_at_sync`](Recorder::ack_at_sync)): which acknowledgements were commits.
    generations: Vec<Option<u64>>,
    finding: Option<Finding>,
}

impl<M: Clone> Recorder<M> {
    /// An empty recorder, for running a [`Scenario`] outside the explorer (the explorer makes
    /// its own).
    #[allow(clippy::new_without_default)]
    pub fn new() -> Recorder<M> {
        Recorder {
            acks: Vec::new(),
            generations: Vec::new(),
            finding: None,
        }
    }

    /// Call after an operation returned `Ok`, with the model that now holds.
    pub fn ack<const P: usize>(&mut self, pager: &Pager<P, SimStorage>, model: M) {
        self.acks.push((pager.storage().sync_count(), model));
        self.generations.push(Some(pager.generation()));
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
        self.generations.push(None);
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

    /// Runs the workload on `pager`, which it owns for the run (a store built on the pager
    /// takes it, and hands it back at the end: `Ok(store.into_pager())`), calling
    /// [`Recorder::ack`] after each acknowledged operation and [`Recorder::failed`] after each
    /// failed one (or [`Recorder::ack_at_sync`] once it knows which sync made what durable).
    /// Stop when the pager is poisoned, and return it. Return a finding if an operation itself
    /// breaks an invariant (for example, hands out an owned page).
    ///
    /// Every sync the pager issues is a crash point: the explorer crashes just before each one
    /// (and after the last), whatever called it (`alloc`, `free`, a protected page's `commit`,
    /// `sync_page`, `sync_all`). A store makes a point of its own protocol a crash point by
    /// syncing there: "write the record, `sync_page` it, then publish it in the root" has a
    /// crash point between the record and the root.
    fn run(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<Self::Model>,
    ) -> Result<Pager<P, SimStorage>, Finding>;

    /// Continues after a recovery that found `model` (crash → recover → more operations → crash),
    /// owning `pager` as [`run`](Self::run) does. The default hands it back untouched.
    fn resume(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<Self::Model>,
        model: &Self::Model,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let _ = (rec, model);
        Ok(pager)
    }

    /// Checks a recovered pager against what is allowed: `Ok` with the model it matched, or the
    /// finding. [`Recovered`] reads as the pager (`Deref`); [`Recovered::to_pager`] gives an
    /// owned one for a store that runs its own open path (its repairs included).
    fn check(
        &self,
        recovered: &Recovered<'_, P>,
        allowed: &Allowed<'_, Self::Model>,
    ) -> Result<Matched, Finding>;
}

/// The pager recovered from a crash image, as [`Scenario::check`] gets it. It reads as the
/// pager (`Deref<Target = Pager<P, SimStorage>>`); [`to_pager`](Self::to_pager) gives an owned
/// pager on a copy of the recovered image, for a store that owns its pager and opens through
/// its own path.
#[derive(Debug)]
pub struct Recovered<'a, const P: usize> {
    pager: &'a Pager<P, SimStorage>,
    commit_mode: CommitMode,
}

impl<'a, const P: usize> Recovered<'a, P> {
    /// `pager`, recovered by [`Pager::open_in`], for a scenario committing in `commit_mode`.
    pub fn new(pager: &'a Pager<P, SimStorage>, commit_mode: CommitMode) -> Recovered<'a, P> {
        Recovered { pager, commit_mode }
    }

    /// The recovered pager.
    pub fn pager(&self) -> &'a Pager<P, SimStorage> {
        self.pager
    }

    /// An owned pager over a copy of the recovered image (as after a reboot: a fresh
    /// `SimStorage` of the recovered bytes, opened again, in the scenario's commit mode), for a
    /// store that takes its pager by value: `let store = MyStore::open(recovered.to_pager()?)?`
    /// runs the store's own open path, its repairs included, and whatever it syncs stays on the
    /// copy (the explorer goes on with the pager it recovered). A copy that does not open is an
    /// INV-6 finding (recovery must leave a file that opens again).
    pub fn to_pager(&self) -> Result<Pager<P, SimStorage>, Finding> {
        let image = self.pager.storage().bytes().to_vec();
        let mut pager =
            Pager::<P, SimStorage>::open_in(SimStorage::from_image(image)).map_err(|e| {
                Finding::new(
                    Invariant::Restartable,
                    format!("the recovered image does not open again: {e}"),
                )
            })?;
        pager.set_commit_mode(self.commit_mode);
        Ok(pager)
    }
}

impl<const P: usize> std::ops::Deref for Recovered<'_, P> {
    type Target = Pager<P, SimStorage>;

    fn deref(&self) -> &Pager<P, SimStorage> {
        self.pager
    }
}

/// An INV-9 finding for a caught panic (`panic`, as `catch_unwind` or a thread's `join` gives
/// it): `{what}: {the panic's message}`.
/// Runs `ops` on `pager` from the model `start`, the way the sequential scenarios do: each
/// operation `apply` returns `Ok` is acknowledged with the model after it; one that fails is
/// recorded ([`Recorder::failed`], INV-7), and once the pager is poisoned nothing more can be
/// acknowledged, so the run ends.
pub(crate) fn run_ops_with<const P: usize, M: Clone, O: Copy>(
    pager: &mut Pager<P, SimStorage>,
    rec: &mut Recorder<M>,
    start: &M,
    ops: &[O],
    apply: impl Fn(&mut Pager<P, SimStorage>, &M, O) -> Result<Result<M, MappedPageError>, Finding>,
) -> Result<(), Finding> {
    let mut model = start.clone();
    for &op in ops {
        match apply(pager, &model, op)? {
            Ok(next) => {
                model = next;
                rec.ack(pager, model.clone());
            }
            Err(error) => {
                rec.failed(pager, &error);
                if pager.is_poisoned() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

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
