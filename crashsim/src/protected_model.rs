//! The protected-page scenario: workloads mixing regular allocations with protected pages,
//! checked against the acknowledged regular set *and* the acknowledged content of every
//! protected page.
//!
//! A recovered state must be, as a whole, the state acknowledged last or the one in flight: the
//! same regular pages, the same protected ids, and every protected page reading byte for byte as
//! in that state (INV-2, INV-3, INV-4). A protected page that cannot be read after a crash
//! (`CorruptProtectedPage`) is an INV-4 finding: the medium did not fail, so its content is lost.
//! During the workload itself the scenario checks that a new protected page reads as zeros, that
//! a writer starts from the committed content, that a commit shows the new content and that a
//! discarded writer changes nothing (INV-4), and that nothing is handed out twice (INV-3).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use mappedpages::format::Geometry;
use mappedpages::{
    CommitMode, MappedPageError, PageId, Pager, ProtectedPageId, ProtectedPageWriter, SimStorage,
};

use crate::identity::{Identity, scenario_identity};
use crate::subsets::splitmix64;
use crate::{Allowed, Finding, Invariant, Matched, Recorder, Recovered, Scenario};

/// One operation of a protected workload. Pages are named by their rank among the allocated ones
/// (modulo their number), so a workload is a fixed sequence whatever ids the pager hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtectedOp {
    /// `alloc()` of a regular page.
    Alloc,
    /// `free` of the regular page of this rank.
    Free(usize),
    /// `alloc_protected()`: the new page reads as zeros.
    AllocProtected,
    /// `alloc_protected_bulk(n)`.
    AllocProtectedBulk(usize),
    /// `get_mut` of the protected page of rank `rank`, fill `len` bytes at `offset` with `value`,
    /// `commit`. The writer must start from the committed content.
    Write {
        /// Rank of the protected page.
        rank: usize,
        /// First byte written (modulo the page size).
        offset: usize,
        /// Bytes written (clamped to the end of the page).
        len: usize,
        /// The byte written.
        value: u8,
    },
    /// `get_mut` of the protected page of rank `rank`, scribble [`DISCARDED_BYTES`] bytes of
    /// `value` at `offset` of the staged page, drop the writer without committing: nothing
    /// changes. (The scribble stays in memory, in flight, until the copy is written again: a
    /// small one keeps the in-flight sets of later crash points small.)
    WriteDiscarded {
        /// Rank of the protected page.
        rank: usize,
        /// First byte scribbled (modulo the page size).
        offset: usize,
        /// The byte scribbled.
        value: u8,
    },
    /// `free_protected` of the protected page of this rank.
    FreeProtected(usize),
    /// `free_protected_bulk` of `count` protected pages, every `step`-th from rank `start`.
    FreeProtectedBulk {
        /// First rank.
        start: usize,
        /// Distance between ranks.
        step: usize,
        /// How many.
        count: usize,
    },
}

/// Bytes a [`ProtectedOp::WriteDiscarded`] scribbles.
pub const DISCARDED_BYTES: usize = 32;

/// The content of one protected page (shared between the models of successive operations).
pub type Content = Arc<Vec<u8>>;

/// The model: the regular pages allocated and the content of every protected page.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProtectedModel {
    /// Allocated regular pages.
    pub regular: BTreeSet<u64>,
    /// Allocated protected pages: id → full committed content.
    pub protected: BTreeMap<u64, Content>,
}

impl ProtectedModel {
    fn summary(&self) -> String {
        format!(
            "{} regular, {} protected",
            self.regular.len(),
            self.protected.len()
        )
    }
}

impl fmt::Debug for ProtectedModel {
    /// Page contents are summarized (non-zero byte count and an FNV-1a hash), not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Summary<'a>(&'a [u8]);
        impl fmt::Debug for Summary<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let hash = self.0.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                let nonzero = self.0.iter().filter(|&&b| b != 0).count();
                write!(f, "<{nonzero} non-zero bytes, fnv {hash:016x}>")
            }
        }
        f.debug_struct("ProtectedModel")
            .field("regular", &self.regular)
            .field(
                "protected",
                &self
                    .protected
                    .iter()
                    .map(|(id, content)| (*id, Summary(content)))
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

/// A named sequence of [`ProtectedOp`]s over a `Pager<P, SimStorage>`.
#[derive(Clone, Debug)]
pub struct ProtectedScenario<const P: usize> {
    identity: Identity,
    ops: Vec<ProtectedOp>,
}

impl<const P: usize> ProtectedScenario<P> {
    /// A scenario running `ops`.
    pub fn new(name: impl Into<String>, seed: u64, ops: Vec<ProtectedOp>) -> Self {
        ProtectedScenario {
            identity: Identity::new(name, seed),
            ops,
        }
    }

    /// The same workload committing in `mode`; a mode other than `Flip` appends
    /// [`crate::commit_mode_suffix`] to the name.
    pub fn with_commit_mode(mut self, mode: CommitMode) -> Self {
        self.identity.set_commit_mode(mode);
        self
    }

    /// The operations.
    pub fn ops(&self) -> &[ProtectedOp] {
        &self.ops
    }
}

/// Why an operation did not produce a new model.
enum Failure {
    /// The pager returned an error (the recorder judges it).
    Pager(MappedPageError),
    /// The operation broke an invariant.
    Finding(Finding),
}

impl From<MappedPageError> for Failure {
    fn from(error: MappedPageError) -> Failure {
        Failure::Pager(error)
    }
}

impl From<Finding> for Failure {
    fn from(finding: Finding) -> Failure {
        Failure::Finding(finding)
    }
}

/// The first byte where `got` differs from `want`, described for a finding.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(at) => format!(
            "byte {at} is {:#04x}, expected {:#04x}; {} bytes differ",
            got[at],
            want[at],
            got.iter().zip(want).filter(|(a, b)| a != b).count()
        ),
        None if got.len() != want.len() => format!("{} bytes, expected {}", got.len(), want.len()),
        None => "identical".to_string(),
    }
}

/// Reads protected page `id` during the workload and compares it with `want`. A read error on a
/// pager that is not poisoned is a finding (the content is in memory, nothing can excuse it).
fn expect_content<const P: usize>(
    pager: &Pager<P, SimStorage>,
    id: u64,
    want: &[u8],
    what: &str,
) -> Result<(), Failure> {
    match ProtectedPageId::<P>::from_raw(id).get(pager) {
        Ok(page) if page.as_bytes() == want => Ok(()),
        Ok(page) => Err(Finding::new(
            Invariant::ProtectedContent,
            format!(
                "{what}: protected page {id} reads wrong content ({})",
                first_difference(page.as_bytes(), want)
            ),
        )
        .into()),
        Err(error) if pager.is_poisoned() => Err(error.into()),
        Err(error) => Err(Finding::new(
            Invariant::ProtectedContent,
            format!("{what}: protected page {id} cannot be read: {error}"),
        )
        .into()),
    }
}

/// `get_mut` of protected page `id`, whose committed content is `committed`. An error on a pager
/// that is not poisoned is a finding, and so is a writer that does not start from the committed
/// content (INV-4).
fn open_writer<'a, const P: usize>(
    pager: &'a mut Pager<P, SimStorage>,
    id: u64,
    committed: &[u8],
) -> Result<ProtectedPageWriter<'a, P, SimStorage>, Failure> {
    let poisoned = pager.is_poisoned();
    let writer = ProtectedPageId::<P>::from_raw(id)
        .get_mut(pager)
        .map_err(|error| {
            if poisoned {
                Failure::Pager(error)
            } else {
                Failure::Finding(Finding::new(
                    Invariant::ProtectedContent,
                    format!("get_mut of allocated protected page {id} fails: {error}"),
                ))
            }
        })?;
    if writer.page().as_bytes() != committed {
        return Err(Finding::new(
            Invariant::ProtectedContent,
            format!(
                "the writer of protected page {id} does not start from the committed content ({})",
                first_difference(writer.page().as_bytes(), committed)
            ),
        )
        .into());
    }
    Ok(writer)
}

/// Applies `op` to `pager`, whose acknowledged state is `model`; returns the model after it.
fn apply<const P: usize>(
    pager: &mut Pager<P, SimStorage>,
    model: &ProtectedModel,
    op: ProtectedOp,
    zeros: &Content,
) -> Result<ProtectedModel, Failure> {
    let mut next = model.clone();
    let nth_regular = |n: usize| {
        model
            .regular
            .iter()
            .nth(n % model.regular.len().max(1))
            .copied()
    };
    let nth_protected = |n: usize| {
        model
            .protected
            .keys()
            .nth(n % model.protected.len().max(1))
            .copied()
    };
    match op {
        ProtectedOp::Alloc => {
            let id = pager.alloc()?;
            if !next.regular.insert(id.raw()) {
                return Err(Finding::new(
                    Invariant::Durable,
                    format!(
                        "alloc handed out page {}, which is already allocated",
                        id.raw()
                    ),
                )
                .into());
            }
            if let Err(error) = id.get(pager) {
                // The page belongs to something else (the directory: a block or a backing copy).
                return Err(Finding::new(
                    Invariant::Durable,
                    format!(
                        "alloc handed out page {}, which cannot be read: {error}",
                        id.raw()
                    ),
                )
                .into());
            }
        }
        ProtectedOp::Free(rank) => {
            let Some(page) = nth_regular(rank) else {
                return Ok(next);
            };
            pager.free(PageId::from_raw(page))?;
            next.regular.remove(&page);
        }
        ProtectedOp::AllocProtected | ProtectedOp::AllocProtectedBulk(_) => {
            let ids = match op {
                ProtectedOp::AllocProtected => vec![pager.alloc_protected()?],
                ProtectedOp::AllocProtectedBulk(count) => pager.alloc_protected_bulk(count)?,
                _ => unreachable!("matched above"),
            };
            for id in ids {
                if next.protected.insert(id.raw(), zeros.clone()).is_some() {
                    return Err(Finding::new(
                        Invariant::Durable,
                        format!(
                            "{op:?} handed out protected page {}, which is already allocated",
                            id.raw()
                        ),
                    )
                    .into());
                }
                expect_content(pager, id.raw(), zeros, &format!("after {op:?}"))?;
            }
            // Backing pages and directory blocks are never taken from the regular pages.
            if let Some(page) = next
                .regular
                .iter()
                .find(|&&page| !pager.is_allocated(PageId::from_raw(page)))
            {
                return Err(Finding::new(
                    Invariant::Durable,
                    format!("{op:?} took regular page {page} from its owner"),
                )
                .into());
            }
        }
        ProtectedOp::Write {
            rank,
            offset,
            len,
            value,
        } => {
            let Some(id) = nth_protected(rank) else {
                return Ok(next);
            };
            let committed = &model.protected[&id];
            let offset = offset % P;
            let len = len.min(P - offset);
            let mut writer = open_writer(pager, id, committed)?;
            writer.page_mut().as_bytes_mut()[offset..offset + len].fill(value);
            writer.commit()?;
            let mut content = committed.to_vec();
            content[offset..offset + len].fill(value);
            expect_content(pager, id, &content, &format!("after {op:?}"))?;
            next.protected.insert(id, Arc::new(content));
        }
        ProtectedOp::WriteDiscarded {
            rank,
            offset,
            value,
        } => {
            let Some(id) = nth_protected(rank) else {
                return Ok(next);
            };
            let committed = &model.protected[&id];
            let offset = offset % P;
            let end = (offset + DISCARDED_BYTES).min(P);
            {
                let mut writer = open_writer(pager, id, committed)?;
                writer.page_mut().as_bytes_mut()[offset..end].fill(value);
                // Dropped here, never committed.
            }
            expect_content(pager, id, committed, "after a discarded writer")?;
        }
        ProtectedOp::FreeProtected(rank) => {
            let Some(id) = nth_protected(rank) else {
                return Ok(next);
            };
            pager.free_protected(ProtectedPageId::from_raw(id))?;
            next.protected.remove(&id);
        }
        ProtectedOp::FreeProtectedBulk { start, step, count } => {
            let ids: Vec<u64> = model
                .protected
                .keys()
                .copied()
                .skip(start % model.protected.len().max(1))
                .step_by(step.max(1))
                .take(count)
                .collect();
            pager.free_protected_bulk(
                ids.iter().copied().map(ProtectedPageId::from_raw).collect(),
            )?;
            for id in ids {
                next.protected.remove(&id);
            }
        }
    }
    // The pager counts what the model holds (INV-5).
    if pager.allocated_page_count() != next.regular.len() as u64
        || pager.protected_page_count() != next.protected.len() as u64
    {
        return Err(Finding::new(
            Invariant::WellFormed,
            format!(
                "after {op:?} the pager counts {} regular and {} protected pages, the model holds {}",
                pager.allocated_page_count(),
                pager.protected_page_count(),
                next.summary()
            ),
        )
        .into());
    }
    Ok(next)
}

fn run_ops<const P: usize>(
    pager: &mut Pager<P, SimStorage>,
    rec: &mut Recorder<ProtectedModel>,
    start: &ProtectedModel,
    ops: &[ProtectedOp],
) -> Result<(), Finding> {
    let zeros: Content = Arc::new(vec![0; P]);
    let mut model = start.clone();
    for &op in ops {
        match apply(pager, &model, op, &zeros) {
            Ok(next) => {
                model = next;
                rec.ack(pager, model.clone());
            }
            Err(Failure::Finding(finding)) => return Err(finding),
            Err(Failure::Pager(error)) => {
                rec.failed(pager, &error);
                // Poisoned: nothing more can be acknowledged. A recorded INV-7 finding: memory no
                // longer holds what is durable, so later checks would only report its echoes.
                if pager.is_poisoned() || rec.finding.is_some() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// What a recovered pager shows: regular pages, and each protected page's content.
struct Observed<'a> {
    regular: Vec<u64>,
    protected: Vec<(u64, &'a [u8])>,
}

/// Reads the recovered state, checking that the pager's counts and lookups agree with its
/// listings (INV-5) and that every protected page can be read (INV-4).
fn observe<const P: usize>(pager: &Pager<P, SimStorage>) -> Result<Observed<'_>, Finding> {
    let regular: Vec<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    if pager.allocated_page_count() != regular.len() as u64 {
        return Err(Finding::new(
            Invariant::WellFormed,
            format!(
                "{} regular pages listed, {} counted",
                regular.len(),
                pager.allocated_page_count()
            ),
        ));
    }
    for &page in &regular {
        if let Err(error) = PageId::<P>::from_raw(page).get(pager) {
            return Err(Finding::new(
                Invariant::WellFormed,
                format!("regular page {page} is listed but cannot be read: {error}"),
            ));
        }
    }
    let mut protected = Vec::new();
    for id in pager.iter_allocated_protected_pages() {
        if !pager.is_protected_allocated(id) {
            return Err(Finding::new(
                Invariant::WellFormed,
                format!("protected page {} is listed but not allocated", id.raw()),
            ));
        }
        match id.get(pager) {
            Ok(page) => protected.push((id.raw(), page.as_bytes())),
            Err(error) => {
                return Err(Finding::new(
                    Invariant::ProtectedContent,
                    format!(
                        "protected page {} cannot be read after recovery: {error}",
                        id.raw()
                    ),
                ));
            }
        }
    }
    if pager.protected_page_count() != protected.len() as u64 {
        return Err(Finding::new(
            Invariant::WellFormed,
            format!(
                "{} protected pages listed, {} counted",
                protected.len(),
                pager.protected_page_count()
            ),
        ));
    }
    Ok(Observed { regular, protected })
}

impl Observed<'_> {
    fn matches(&self, model: &ProtectedModel) -> bool {
        self.regular.iter().eq(model.regular.iter())
            && self.protected.len() == model.protected.len()
            && self
                .protected
                .iter()
                .zip(&model.protected)
                .all(|((id, bytes), (model_id, content))| id == model_id && *bytes == &content[..])
    }

    fn summary(&self) -> String {
        format!(
            "{} regular, {} protected",
            self.regular.len(),
            self.protected.len()
        )
    }
}

impl<const P: usize> Scenario<P> for ProtectedScenario<P> {
    type Model = ProtectedModel;

    scenario_identity!();

    fn initial_model(&self) -> ProtectedModel {
        ProtectedModel::default()
    }

    fn run(
        &self,
        mut pager: Pager<P, SimStorage>,
        rec: &mut Recorder<ProtectedModel>,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        run_ops(&mut pager, rec, &ProtectedModel::default(), &self.ops)?;
        Ok(pager)
    }

    fn resume(
        &self,
        mut pager: Pager<P, SimStorage>,
        rec: &mut Recorder<ProtectedModel>,
        model: &ProtectedModel,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let ops = [
            ProtectedOp::AllocProtected,
            ProtectedOp::Write {
                rank: 0,
                offset: P / 2 - 8,
                len: 16,
                value: 0xC1,
            },
            ProtectedOp::WriteDiscarded {
                rank: 1,
                offset: 0,
                value: 0xC2,
            },
            ProtectedOp::Write {
                rank: 1,
                offset: 0,
                len: 8,
                value: 0xC3,
            },
            ProtectedOp::Alloc,
            ProtectedOp::FreeProtected(usize::MAX),
            ProtectedOp::AllocProtectedBulk(3),
            ProtectedOp::Free(0),
        ];
        run_ops(&mut pager, rec, model, &ops)?;
        Ok(pager)
    }

    fn check(
        &self,
        pager: &Recovered<'_, P>,
        allowed: &Allowed<'_, ProtectedModel>,
    ) -> Result<Matched, Finding> {
        let observed = observe(pager)?;
        if observed.matches(allowed.acknowledged) {
            return Ok(Matched::Acknowledged);
        }
        if allowed.in_flight.is_some_and(|m| observed.matches(m)) {
            return Ok(Matched::InFlight);
        }
        let acknowledged = allowed.acknowledged;
        let in_flight = allowed.in_flight;
        // Something acknowledged and kept by the operation in flight is gone: INV-3.
        let regular: BTreeSet<u64> = observed.regular.iter().copied().collect();
        if let Some(lost) = acknowledged
            .regular
            .iter()
            .filter(|page| in_flight.is_none_or(|m| m.regular.contains(page)))
            .find(|page| !regular.contains(page))
        {
            return Err(Finding::new(
                Invariant::Durable,
                format!(
                    "acknowledged page {lost} is free after recovery (recovered {}, acknowledged {})",
                    observed.summary(),
                    acknowledged.summary()
                ),
            ));
        }
        let recovered: BTreeMap<u64, &[u8]> = observed.protected.iter().copied().collect();
        if let Some(lost) = acknowledged
            .protected
            .keys()
            .filter(|id| in_flight.is_none_or(|m| m.protected.contains_key(id)))
            .find(|id| !recovered.contains_key(id))
        {
            return Err(Finding::new(
                Invariant::Durable,
                format!(
                    "acknowledged protected page {lost} is free after recovery (recovered {}, acknowledged {})",
                    observed.summary(),
                    acknowledged.summary()
                ),
            ));
        }
        // A protected page whose content is neither the acknowledged one nor the one in flight:
        // older, mixed or garbage (INV-4).
        for (&id, &bytes) in &recovered {
            let acked = acknowledged.protected.get(&id);
            let flying = in_flight.and_then(|m| m.protected.get(&id));
            if acked.is_none() && flying.is_none() {
                continue; // an id no allowed state has: reported below as INV-2
            }
            if acked.is_some_and(|c| bytes == &c[..]) || flying.is_some_and(|c| bytes == &c[..]) {
                continue;
            }
            let reference = acked.or(flying).expect("one of them is some");
            return Err(Finding::new(
                Invariant::ProtectedContent,
                format!(
                    "protected page {id} reads neither its acknowledged content nor the one in flight (against {}: {})",
                    if acked.is_some() {
                        "the acknowledged content"
                    } else {
                        "the content in flight"
                    },
                    first_difference(bytes, reference)
                ),
            ));
        }
        // Every piece is allowed on its own, but the whole is no single commit's state.
        Err(Finding::new(
            Invariant::Atomic,
            format!(
                "recovered {}: neither the acknowledged state ({}) nor the one in flight ({})",
                observed.summary(),
                acknowledged.summary(),
                in_flight.map_or_else(|| "none".to_string(), ProtectedModel::summary)
            ),
        ))
    }
}

/// The fixed protected workload for `page_size`-byte pages: repeated full and partial commits of
/// one page (in different sectors, one across a sector boundary), discarded writers, free of that
/// page (both its copies hold data) and reuse of its entry, a bulk allocation that fills the
/// first directory block and opens a second one (growing the file; the allocator's next-fit
/// cursor wraps, so the freed copies come back as backing pages and must read as zeros), bulk
/// frees that empty entries in both blocks, reuse of freed entries, and interleaved regular
/// pages.
pub fn protected_ops(page_size: usize) -> Vec<ProtectedOp> {
    use ProtectedOp::*;
    let p = page_size;
    let per_block = Geometry::new(p).directory_entries_per_block() as usize;
    vec![
        AllocProtected,
        Alloc,
        // Full page, then partial updates in the first sector, the middle, across the boundary
        // of sectors 0 and 1, and the last sector; each commit stages into the other copy.
        Write {
            rank: 0,
            offset: 0,
            len: p,
            value: 0x11,
        },
        Write {
            rank: 0,
            offset: 10,
            len: 20,
            value: 0x22,
        },
        WriteDiscarded {
            rank: 0,
            offset: 40,
            value: 0xEE,
        },
        Write {
            rank: 0,
            offset: p / 2 + 100,
            len: 300,
            value: 0x33,
        },
        Write {
            rank: 0,
            offset: 500,
            len: 24,
            value: 0x44,
        },
        Write {
            rank: 0,
            offset: p - 24,
            len: 24,
            value: 0x45,
        },
        AllocProtectedBulk(5),
        Write {
            rank: 3,
            offset: 0,
            len: 512,
            value: 0x55,
        },
        Alloc,
        // Page 0's two copies both hold data now. Its entry is reused at once, its pages (by the
        // next-fit allocator) in the bulk allocation below: both must read as zeros.
        FreeProtected(0),
        AllocProtected,
        WriteDiscarded {
            rank: 0,
            offset: p - 40,
            value: 0xEF,
        },
        Write {
            rank: 0,
            offset: p - 8,
            len: 8,
            value: 0x66,
        },
        Free(0),
        // Fills the first directory block and opens a second one (and grows the file).
        AllocProtectedBulk(per_block),
        Write {
            rank: per_block + 2,
            offset: 100,
            len: 100,
            value: 0x77,
        },
        Alloc,
        WriteDiscarded {
            rank: per_block + 3,
            offset: p / 2,
            value: 0xF0,
        },
        // Every other page from rank 0: entries in both blocks.
        FreeProtectedBulk {
            start: 0,
            step: 2,
            count: per_block / 2 + 4,
        },
        Write {
            rank: 0,
            offset: 0,
            len: 8,
            value: 0x88,
        },
        // Reuses the freed entries (and their pages, which must read as zeros).
        AllocProtectedBulk(4),
        Write {
            rank: 1,
            offset: 200,
            len: 400,
            value: 0x99,
        },
        Alloc,
        FreeProtected(2),
        FreeProtectedBulk {
            start: 1,
            step: 1,
            count: 6,
        },
        Free(1),
        AllocProtected,
    ]
}

/// A seeded random mix of every protected and regular operation, `count` long; at most about 80
/// protected and 60 regular pages are allocated at a time. A discarded writer is always followed
/// by a commit to the same page: that commit must start from the committed content, not from the
/// scribble, and it writes the staged copy back, so the scribble does not stay in flight (and
/// double the crash states of every later sync) for the rest of the workload.
pub fn random_protected_ops(seed: u64, count: usize) -> Vec<ProtectedOp> {
    let mut state = seed;
    let mut next = |bound: u64| splitmix64(&mut state) % bound;
    // What the ops allocated so far (an estimate: frees of an empty set do nothing).
    let mut protected: i64 = 0;
    let mut regular: i64 = 0;
    let mut ops = Vec::with_capacity(count + 1);
    while ops.len() < count {
        let roll = next(100);
        let op = match roll {
            0..=9 if protected < 80 => {
                protected += 1;
                ProtectedOp::AllocProtected
            }
            10..=15 if protected < 80 => {
                let n = 1 + next(20) as usize;
                protected += n as i64;
                ProtectedOp::AllocProtectedBulk(n)
            }
            16..=55 if protected > 0 => {
                let rank = next(1 << 16) as usize;
                if roll > 50 {
                    ops.push(ProtectedOp::WriteDiscarded {
                        rank,
                        offset: next(1 << 16) as usize,
                        value: 1 + next(255) as u8,
                    });
                }
                // Mostly small partial writes, sometimes the whole page.
                let (offset, len) = if next(5) == 0 {
                    (0, usize::MAX)
                } else {
                    (next(1 << 16) as usize, 1 + next(600) as usize)
                };
                ProtectedOp::Write {
                    rank,
                    offset,
                    len,
                    value: 1 + next(255) as u8,
                }
            }
            56..=65 if protected > 0 => {
                protected -= 1;
                ProtectedOp::FreeProtected(next(1 << 16) as usize)
            }
            66..=71 if protected > 0 => {
                let n = 1 + next(12) as usize;
                protected -= n.min(protected as usize) as i64;
                ProtectedOp::FreeProtectedBulk {
                    start: next(64) as usize,
                    step: 1 + next(3) as usize,
                    count: n,
                }
            }
            72..=85 if regular < 60 => {
                regular += 1;
                ProtectedOp::Alloc
            }
            86..=99 if regular > 0 => {
                regular -= 1;
                ProtectedOp::Free(next(1 << 16) as usize)
            }
            _ if protected < 80 => {
                protected += 1;
                ProtectedOp::AllocProtected
            }
            _ => {
                protected -= 1;
                ProtectedOp::FreeProtected(next(1 << 16) as usize)
            }
        };
        ops.push(op);
    }
    ops.truncate(count);
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_workloads_cross_a_directory_block() {
        for page_size in [1024, 4096] {
            let per_block = Geometry::new(page_size).directory_entries_per_block() as usize;
            assert_eq!(per_block, if page_size == 1024 { 30 } else { 126 });
            let mut live = 0usize;
            let mut peak = 0;
            for op in protected_ops(page_size) {
                match op {
                    ProtectedOp::AllocProtected => live += 1,
                    ProtectedOp::AllocProtectedBulk(n) => live += n,
                    ProtectedOp::FreeProtected(_) => live -= 1,
                    ProtectedOp::FreeProtectedBulk { count, .. } => live -= count,
                    _ => {}
                }
                peak = peak.max(live);
            }
            assert!(peak > per_block, "{page_size}: peak {peak}");
        }
    }

    #[test]
    fn the_start_of_the_fixed_workload_explores_clean() {
        let ops = protected_ops(1024)[..14].to_vec();
        let scenario = ProtectedScenario::<1024>::new("protected-start", 0, ops);
        let outcome = crate::explore(&scenario, &crate::Config::quick());
        assert!(
            outcome.violations.is_empty(),
            "{:?}",
            outcome.violations.first()
        );
        assert!(outcome.states > 1000, "{} states", outcome.states);
    }

    #[test]
    fn random_mixes_use_every_operation() {
        let ops = random_protected_ops(7, 400);
        let kinds: std::collections::HashSet<std::mem::Discriminant<ProtectedOp>> =
            ops.iter().map(std::mem::discriminant).collect();
        assert_eq!(kinds.len(), 8);
    }
}
