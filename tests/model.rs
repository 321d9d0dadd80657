//! Model-based property tests: random sequences of every public operation, run against the pager
//! and against a reference model, compared after every step.
//!
//! * The alphabet ([`Op`]) covers regular pages (`alloc`, `free`, `alloc_bulk`, `free_bulk`,
//!   writes through `get_mut`, `sync_page`, `sync_all`), protected pages (`alloc_protected`,
//!   `alloc_protected_bulk`, `free_protected`, `free_protected_bulk`, `get_mut` → partial write →
//!   `commit`, `get_mut` → write → drop), a `SubPageAllocator` that owns the pager (`alloc`,
//!   `free`, their bulk forms, `get_mut`, `sync_parent`, `rebuild` from the model's ids), a clean
//!   `Reopen` and, on `SimStorage`, `Crash`: a crash image with a seeded subset of the sectors in
//!   flight, reopened.
//! * Every free, bulk free and rebuild can carry one invalid id (a duplicate, a freed id, an id
//!   out of range or in a reserved page); the call must fail with exactly the typed error for that
//!   id and change nothing.
//! * Ops name their targets by *rank* into the model (`pick % len`), so any subsequence of a
//!   failing sequence is still a valid sequence and proptest shrinks to a short one.
//! * The model: regular page → bytes (and whether they are durable: synced and not written
//!   since), protected id → committed bytes, sub-page id → bytes (and durable). After every step
//!   [`check`] compares the counts, both iterators, `is_allocated`, the expected generation (one
//!   commit per allocation change, none otherwise), the page accounting, every page's bytes
//!   through `get`, and that freed ids give the right typed errors.
//! * After `Reopen` everything written must still read back (nothing was lost: the storage or the
//!   file survives). After `Crash` every acknowledged operation must have survived exactly; only
//!   regular and sub-page bytes written but not synced may hold anything (the model adopts what
//!   the recovered file holds for those).
//!
//! The same strategies run on `SimStorage` and on `MmapStorage` (a file in a temporary
//! directory; `Crash` is a clean reopen there), at page sizes 1024 and 4096. Failures are kept in
//! `tests/model.proptest-regressions` and replayed first on every run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::PathBuf;

use mappedpages::{
    CrashLength, MappedPageError, MmapStorage, PageId, Pager, ProtectedPageId, SectorSize,
    SimStorage, Storage, SubPageAllocator, SubPageId,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

// ----- the operation alphabet ------------------------------------------------------------------

/// Where a write lands in a page or sub-page: resolved against its size by [`Span::resolve`].
#[derive(Clone, Copy, Debug)]
struct Span {
    offset: u16,
    len: u16,
    byte: u8,
}

impl Span {
    /// `(offset, len)` inside a region of `size` bytes; never empty.
    fn resolve(self, size: usize) -> (usize, usize) {
        let offset = usize::from(self.offset) % size;
        let len = 1 + usize::from(self.len) % (size - offset);
        (offset, len)
    }

    /// Writes the span into `bytes` (the whole region): `byte`, `byte + 1`, ...
    fn apply(self, bytes: &mut [u8]) {
        let (offset, len) = self.resolve(bytes.len());
        for (i, b) in bytes[offset..offset + len].iter_mut().enumerate() {
            *b = self.byte.wrapping_add(i as u8);
        }
    }
}

/// One invalid id added to a batch (or used alone). Read per kind of id:
///
/// | variant | regular page | protected page | sub-page | sub-page for `rebuild` |
/// |---|---|---|---|---|
/// | `Duplicate(k)` | a repeat of a batch member | same | same | a repeat of an owned id |
/// | `Freed(k)` | a freed page | a freed id | a freed sub-page | a sub-page of a freed page |
/// | `Foreign(n)` | page `page_count + n` | id `2^40 + n` | sub-page `n` (if not owned) | page `page_count + n` |
/// | `Reserved(k)` | page `k % 5` (internal) | id `2^41 + k` | slot 0 of page `k % 5` | page `k % 5` |
#[derive(Clone, Copy, Debug)]
enum Bad {
    Duplicate(usize),
    Freed(usize),
    Foreign(u16),
    Reserved(u8),
}

/// An invalid id and where it goes in the batch (`position % (len + 1)`).
type BadAt = Option<(Bad, usize)>;

#[derive(Clone, Debug)]
enum Op {
    /// `Pager::alloc`.
    Alloc,
    /// `Pager::alloc_bulk(n)`.
    AllocBulk(usize),
    /// `Pager::free` of the `pick`-th regular page, or of the invalid id.
    Free { pick: usize, bad: BadAt },
    /// `Pager::free_bulk` of the regular pages whose rank bit (`rank % 64`) is set in `select`.
    FreeBulk { select: u64, bad: BadAt },
    /// `get_mut` of the `pick`-th regular page, then a write.
    Write { pick: usize, span: Span },
    /// `Pager::sync_page` of the `pick`-th regular page.
    Sync { pick: usize },
    /// `Pager::sync_all` (or `SubPageAllocator::sync_all` in sub-page mode).
    SyncAll,
    /// `Pager::alloc_protected`.
    AllocProtected,
    /// `Pager::alloc_protected_bulk(n)`.
    AllocProtectedBulk(usize),
    /// `Pager::free_protected` of the `pick`-th protected page, or of the invalid id.
    FreeProtected { pick: usize, bad: BadAt },
    /// `Pager::free_protected_bulk` of a selection, like `FreeBulk`.
    FreeProtectedBulk { select: u64, bad: BadAt },
    /// `ProtectedPageId::get_mut` → partial write → `commit`.
    Commit { pick: usize, span: Span },
    /// `ProtectedPageId::get_mut` → write → drop without commit.
    Abandon { pick: usize, span: Span },
    /// `SubPageAllocator::alloc`.
    SubAlloc,
    /// `SubPageAllocator::alloc_bulk(n)`.
    SubAllocBulk(usize),
    /// `SubPageAllocator::free` of the `pick`-th sub-page, or of the invalid id.
    SubFree { pick: usize, bad: BadAt },
    /// `SubPageAllocator::free_bulk` of a selection, like `FreeBulk`.
    SubFreeBulk { select: u64, bad: BadAt },
    /// `SubPageId::get_mut` of the `pick`-th sub-page, then a write.
    SubWrite { pick: usize, span: Span },
    /// `SubPageAllocator::sync_parent` of the `pick`-th sub-page.
    SubSync { pick: usize },
    /// `into_pager`, then `try_rebuild` with the invalid id (must fail and give the pager back),
    /// then `rebuild` from the model's ids.
    SubRebuild { bad: BadAt },
    /// Drop the pager and open the storage (or file) again.
    Reopen,
    /// `SimStorage` only (a clean reopen on files): open a crash image of the current state,
    /// keeping a subset of the sectors in flight chosen by `mask_seed`.
    Crash { mask_seed: u64 },
}

fn span() -> impl Strategy<Value = Span> {
    (any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(offset, len, byte)| Span {
        offset,
        len,
        byte,
    })
}

fn bad() -> impl Strategy<Value = BadAt> {
    let kind = prop_oneof![
        (0usize..64).prop_map(Bad::Duplicate),
        (0usize..64).prop_map(Bad::Freed),
        any::<u16>().prop_map(Bad::Foreign),
        any::<u8>().prop_map(Bad::Reserved),
    ];
    // Mostly valid calls: an invalid id in about one call in four.
    prop_oneof![
        3 => Just(None),
        1 => (kind, 0usize..64).prop_map(Some),
    ]
}

/// Simple ops first: proptest shrinks a `prop_oneof!` towards its earlier arms.
fn op() -> impl Strategy<Value = Op> {
    let pick = || 0usize..64;
    prop_oneof![
        6 => Just(Op::Alloc),
        2 => (0usize..=12).prop_map(Op::AllocBulk),
        3 => (pick(), bad()).prop_map(|(pick, bad)| Op::Free { pick, bad }),
        2 => (any::<u64>(), bad()).prop_map(|(select, bad)| Op::FreeBulk { select, bad }),
        4 => (pick(), span()).prop_map(|(pick, span)| Op::Write { pick, span }),
        2 => pick().prop_map(|pick| Op::Sync { pick }),
        1 => Just(Op::SyncAll),
        4 => Just(Op::AllocProtected),
        2 => (0usize..=6).prop_map(Op::AllocProtectedBulk),
        2 => (pick(), bad()).prop_map(|(pick, bad)| Op::FreeProtected { pick, bad }),
        2 => (any::<u64>(), bad()).prop_map(|(select, bad)| Op::FreeProtectedBulk { select, bad }),
        4 => (pick(), span()).prop_map(|(pick, span)| Op::Commit { pick, span }),
        2 => (pick(), span()).prop_map(|(pick, span)| Op::Abandon { pick, span }),
        4 => Just(Op::SubAlloc),
        2 => (0usize..=20).prop_map(Op::SubAllocBulk),
        3 => (pick(), bad()).prop_map(|(pick, bad)| Op::SubFree { pick, bad }),
        2 => (any::<u64>(), bad()).prop_map(|(select, bad)| Op::SubFreeBulk { select, bad }),
        3 => (pick(), span()).prop_map(|(pick, span)| Op::SubWrite { pick, span }),
        2 => pick().prop_map(|pick| Op::SubSync { pick }),
        1 => bad().prop_map(|bad| Op::SubRebuild { bad }),
        2 => Just(Op::Reopen),
        3 => any::<u64>().prop_map(|mask_seed| Op::Crash { mask_seed }),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..=40)
}

// ----- storage backends ------------------------------------------------------------------------

/// How a run creates, reopens and crashes its pager.
trait Backend: Sized {
    type S: Storage;
    fn create<const P: usize>() -> Result<(Self, Pager<P, Self::S>), String>;
    fn reopen<const P: usize>(
        &mut self,
        pager: Pager<P, Self::S>,
    ) -> Result<Pager<P, Self::S>, String>;
    /// Opens what a crash right now could leave; `None` if this backend cannot crash.
    fn crash<const P: usize>(
        &mut self,
        pager: &Pager<P, Self::S>,
        mask_seed: u64,
    ) -> Option<Result<Pager<P, Self::S>, String>>;
}

struct Sim;

impl Backend for Sim {
    type S = SimStorage;

    fn create<const P: usize>() -> Result<(Self, Pager<P, SimStorage>), String> {
        let pager = Pager::create_in(SimStorage::new()).map_err(|e| format!("create_in: {e:?}"))?;
        Ok((Sim, pager))
    }

    fn reopen<const P: usize>(
        &mut self,
        pager: Pager<P, SimStorage>,
    ) -> Result<Pager<P, SimStorage>, String> {
        Pager::open_in(pager.into_storage()).map_err(|e| format!("reopen: {e:?}"))
    }

    fn crash<const P: usize>(
        &mut self,
        pager: &Pager<P, SimStorage>,
        mask_seed: u64,
    ) -> Option<Result<Pager<P, SimStorage>, String>> {
        let storage = pager.storage();
        let sector = if mask_seed & 1 == 0 {
            SectorSize::S512
        } else {
            SectorSize::S4096
        };
        let length = if mask_seed & 2 == 0 {
            CrashLength::Current
        } else {
            CrashLength::Durable
        };
        let in_flight = storage.in_flight_sectors(sector);
        let mut state = mask_seed;
        let kept: Vec<u64> = match (mask_seed >> 2) % 4 {
            0 => Vec::new(),
            1 => in_flight.clone(),
            _ => in_flight
                .iter()
                .copied()
                .filter(|_| splitmix64(&mut state) & 1 == 1)
                .collect(),
        };
        let image = storage.crash_image(sector, &kept, length);
        Some(
            Pager::open_in(SimStorage::from_image(image)).map_err(|e| {
                format!(
                    "crash image ({sector:?}, {length:?}, kept {} of {} in flight) does not open: {e:?}",
                    kept.len(),
                    in_flight.len()
                )
            }),
        )
    }
}

struct Mmap {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Backend for Mmap {
    type S = MmapStorage;

    fn create<const P: usize>() -> Result<(Self, Pager<P, MmapStorage>), String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let path = dir.path().join("model.bin");
        let pager = Pager::<P>::create(&path).map_err(|e| format!("create: {e:?}"))?;
        Ok((Mmap { _dir: dir, path }, pager))
    }

    fn reopen<const P: usize>(
        &mut self,
        pager: Pager<P, MmapStorage>,
    ) -> Result<Pager<P, MmapStorage>, String> {
        drop(pager);
        Pager::<P>::open(&self.path).map_err(|e| format!("open: {e:?}"))
    }

    fn crash<const P: usize>(
        &mut self,
        _pager: &Pager<P, MmapStorage>,
        _mask_seed: u64,
    ) -> Option<Result<Pager<P, MmapStorage>, String>> {
        None
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ----- the system under test -------------------------------------------------------------------

/// The pager, or a `SubPageAllocator` that owns it. Ops switch modes as they need: a pager op
/// takes the pager back with `into_pager`, a sub-page op rebuilds the allocator from the model.
enum Holder<const P: usize, const SUB: usize, S: Storage> {
    Pager(Pager<P, S>),
    Sub(SubPageAllocator<P, SUB, S>),
    Empty,
}

impl<const P: usize, const SUB: usize, S: Storage> Holder<P, SUB, S> {
    fn pager(&self) -> &Pager<P, S> {
        match self {
            Holder::Pager(pager) => pager,
            Holder::Sub(sub) => sub.pager(),
            Holder::Empty => unreachable!("the holder is refilled by every op"),
        }
    }

    fn take_pager(&mut self) -> Pager<P, S> {
        match std::mem::replace(self, Holder::Empty) {
            Holder::Pager(pager) => pager,
            Holder::Sub(sub) => sub.into_pager(),
            Holder::Empty => unreachable!("the holder is refilled by every op"),
        }
    }

    fn pager_mut(&mut self) -> &mut Pager<P, S> {
        if !matches!(self, Holder::Pager(_)) {
            let pager = self.take_pager();
            *self = Holder::Pager(pager);
        }
        match self {
            Holder::Pager(pager) => pager,
            _ => unreachable!(),
        }
    }

    fn sub_mut(
        &mut self,
        owned: Vec<SubPageId<P, SUB>>,
    ) -> Result<&mut SubPageAllocator<P, SUB, S>, String> {
        if !matches!(self, Holder::Sub(_)) {
            let pager = self.take_pager();
            match SubPageAllocator::try_rebuild(pager, owned) {
                Ok(sub) => *self = Holder::Sub(sub),
                Err((e, pager)) => {
                    *self = Holder::Pager(pager);
                    return Err(format!("rebuild from the model's ids: {e:?}"));
                }
            }
        }
        match self {
            Holder::Sub(sub) => Ok(sub),
            _ => unreachable!(),
        }
    }
}

// ----- the reference model ---------------------------------------------------------------------

/// Bytes of a regular page or sub-page, and whether they are durable (synced, not written since).
#[derive(Clone, Debug)]
struct Data {
    bytes: Vec<u8>,
    durable: bool,
}

struct Model<const P: usize, const SUB: usize> {
    /// Generation the pager must report: one more per commit.
    generation: u64,
    regular: BTreeMap<u64, Data>,
    protected: BTreeMap<u64, Vec<u8>>,
    /// Raw sub-page id → bytes.
    subs: BTreeMap<u64, Data>,
    /// Pages freed (regular pages and emptied parents) and not handed out since → `true` if a
    /// protected allocation happened since (it may have taken the page: `ReservedPage`).
    freed_pages: BTreeMap<u64, bool>,
    freed_protected: BTreeSet<u64>,
    freed_subs: BTreeSet<u64>,
    /// Pages owned by the protected-page directory beyond the backing copies: four per block.
    /// Blocks are never freed, so this never decreases.
    directory_pages: u64,
}

impl<const P: usize, const SUB: usize> Model<P, SUB> {
    const PER: u64 = (P / SUB) as u64;
    /// Pages per bitmap group (SPEC.md §2.1).
    const GROUP: u64 = ((P - 32) * 8) as u64;

    fn new(generation: u64) -> Self {
        Model {
            generation,
            regular: BTreeMap::new(),
            protected: BTreeMap::new(),
            subs: BTreeMap::new(),
            freed_pages: BTreeMap::new(),
            freed_protected: BTreeSet::new(),
            freed_subs: BTreeSet::new(),
            directory_pages: 0,
        }
    }

    fn parents(&self) -> BTreeSet<u64> {
        self.subs.keys().map(|raw| raw / Self::PER).collect()
    }

    fn sub_ids(&self) -> Vec<SubPageId<P, SUB>> {
        self.subs
            .keys()
            .map(|&raw| SubPageId::from_raw(raw))
            .collect()
    }

    /// The free slots of the parent pages held, in increasing raw order.
    fn free_slots(&self) -> Vec<u64> {
        self.parents()
            .into_iter()
            .flat_map(|page| page * Self::PER..(page + 1) * Self::PER)
            .filter(|raw| !self.subs.contains_key(raw))
            .collect()
    }

    fn nth<K: Copy, V>(map: &BTreeMap<K, V>, pick: usize) -> Option<K> {
        (!map.is_empty()).then(|| *map.keys().nth(pick % map.len()).expect("in range"))
    }

    fn nth_set(set: &BTreeSet<u64>, pick: usize) -> Option<u64> {
        (!set.is_empty()).then(|| *set.iter().nth(pick % set.len()).expect("in range"))
    }

    fn select<V>(map: &BTreeMap<u64, V>, select: u64) -> Vec<u64> {
        map.keys()
            .enumerate()
            .filter(|(rank, _)| select >> (rank % 64) & 1 == 1)
            .map(|(_, &k)| k)
            .collect()
    }

    /// A page handed out by an allocation: it must be free in the model.
    fn take_page(&mut self, page: u64) -> Result<(), String> {
        if self.regular.contains_key(&page) || self.parents().contains(&page) {
            return Err(format!("page {page} handed out while in use"));
        }
        self.freed_pages.remove(&page);
        Ok(())
    }

    fn page_freed(&mut self, page: u64) {
        self.freed_pages.insert(page, false);
    }

    /// A protected allocation may take any free page.
    fn protected_allocated(&mut self) {
        for maybe_reserved in self.freed_pages.values_mut() {
            *maybe_reserved = true;
        }
    }

    /// The lowest `count` protected ids not in use: the ids a protected allocation must return.
    fn lowest_free_protected(&self, count: usize) -> Vec<u64> {
        (0u64..)
            .filter(|id| !self.protected.contains_key(id))
            .take(count)
            .collect()
    }

    // ----- invalid ids ---------------------------------------------------------------------------

    /// An invalid regular page for a (bulk) free and the errors allowed for it.
    fn bad_page(
        &self,
        bad: Bad,
        batch: &[u64],
        page_count: u64,
    ) -> Option<(u64, Vec<MappedPageError>)> {
        match bad {
            Bad::Duplicate(k) => {
                let page = *batch.get(k % batch.len().max(1))?;
                Some((page, vec![MappedPageError::DuplicateId { page }]))
            }
            Bad::Freed(k) => {
                let page = Self::nth(&self.freed_pages, k)?;
                let mut errors = vec![MappedPageError::DoubleFree { page }];
                if self.freed_pages[&page] {
                    errors.push(MappedPageError::ReservedPage { page });
                }
                Some((page, errors))
            }
            Bad::Foreign(n) => {
                let page = page_count + u64::from(n);
                Some((
                    page,
                    vec![MappedPageError::OutOfBounds { page, page_count }],
                ))
            }
            Bad::Reserved(k) => {
                let page = u64::from(k) % 5;
                Some((page, vec![MappedPageError::ReservedPage { page }]))
            }
        }
    }

    fn bad_protected(&self, bad: Bad, batch: &[u64]) -> Option<(u64, MappedPageError)> {
        match bad {
            Bad::Duplicate(k) => {
                let id = *batch.get(k % batch.len().max(1))?;
                Some((id, MappedPageError::DuplicateProtectedId { id }))
            }
            Bad::Freed(k) => {
                let id = Self::nth_set(&self.freed_protected, k)?;
                Some((id, MappedPageError::ProtectedNotAllocated { id }))
            }
            Bad::Foreign(n) => {
                let id = (1 << 40) + u64::from(n);
                Some((id, MappedPageError::ProtectedNotAllocated { id }))
            }
            Bad::Reserved(k) => {
                let id = (1 << 41) + u64::from(k);
                Some((id, MappedPageError::ProtectedNotAllocated { id }))
            }
        }
    }

    fn bad_sub(&self, bad: Bad, batch: &[u64]) -> Option<(u64, MappedPageError)> {
        let raw = match bad {
            Bad::Duplicate(k) => {
                let raw = *batch.get(k % batch.len().max(1))?;
                let id = SubPageId::<P, SUB>::from_raw(raw);
                return Some((
                    raw,
                    MappedPageError::DuplicateSubPageId {
                        page: id.parent().raw(),
                        slot: id.slot(),
                    },
                ));
            }
            Bad::Freed(k) => Self::nth_set(&self.freed_subs, k)?,
            Bad::Foreign(n) => u64::from(n),
            Bad::Reserved(k) => u64::from(k) % 5 * Self::PER,
        };
        if self.subs.contains_key(&raw) {
            return None;
        }
        let id = SubPageId::<P, SUB>::from_raw(raw);
        Some((
            raw,
            MappedPageError::SubPageNotAllocated {
                page: id.parent().raw(),
                slot: id.slot(),
            },
        ))
    }

    /// An invalid id for `rebuild` and the errors allowed for it.
    fn bad_rebuild(&self, bad: Bad, page_count: u64) -> Option<(u64, Vec<MappedPageError>)> {
        match bad {
            Bad::Duplicate(k) => {
                let raw = Self::nth(&self.subs, k)?;
                let id = SubPageId::<P, SUB>::from_raw(raw);
                let error = MappedPageError::DuplicateSubPageId {
                    page: id.parent().raw(),
                    slot: id.slot(),
                };
                Some((raw, vec![error]))
            }
            Bad::Freed(k) => {
                let page = Self::nth(&self.freed_pages, k)?;
                let mut errors = vec![MappedPageError::NotAllocated { page }];
                if self.freed_pages[&page] {
                    errors.push(MappedPageError::ReservedPage { page });
                }
                Some((page * Self::PER + k as u64 % Self::PER, errors))
            }
            Bad::Foreign(n) => {
                let page = page_count + u64::from(n);
                let error = MappedPageError::OutOfBounds { page, page_count };
                Some((page * Self::PER, vec![error]))
            }
            Bad::Reserved(k) => {
                let page = u64::from(k) % 5;
                Some((
                    page * Self::PER,
                    vec![MappedPageError::ReservedPage { page }],
                ))
            }
        }
    }
}

/// Inserts `extra` into `batch` at `position % (len + 1)`.
fn insert_at<T: Copy>(batch: &[T], extra: T, position: usize) -> Vec<T> {
    let mut out = batch.to_vec();
    out.insert(position % (batch.len() + 1), extra);
    out
}

// ----- checking helpers ------------------------------------------------------------------------

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

fn same_error(actual: &MappedPageError, allowed: &[MappedPageError]) -> bool {
    let actual = format!("{actual:?}");
    allowed.iter().any(|e| format!("{e:?}") == actual)
}

fn expect_error<T: Debug>(
    result: Result<T, MappedPageError>,
    allowed: &[MappedPageError],
    what: &str,
) -> Result<(), String> {
    match result {
        Err(e) if same_error(&e, allowed) => Ok(()),
        Err(e) => Err(format!("{what}: expected one of {allowed:?}, got {e:?}")),
        Ok(value) => Err(format!(
            "{what}: expected one of {allowed:?}, got Ok({value:?})"
        )),
    }
}

fn ok<T>(result: Result<T, MappedPageError>, what: &str) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e:?}"))
}

fn read_page<const P: usize, S: Storage>(
    pager: &Pager<P, S>,
    page: u64,
) -> Result<Vec<u8>, String> {
    Ok(ok(
        PageId::<P>::from_raw(page).get(pager),
        &format!("get page {page}"),
    )?
    .as_bytes()
    .to_vec())
}

/// A sub-page's bytes, read through its parent page.
fn read_sub<const P: usize, const SUB: usize, S: Storage>(
    pager: &Pager<P, S>,
    raw: u64,
) -> Result<Vec<u8>, String> {
    let id = SubPageId::<P, SUB>::from_raw(raw);
    let parent = read_page(pager, id.parent().raw())?;
    let start = id.slot() as usize * SUB;
    Ok(parent[start..start + SUB].to_vec())
}

/// Compares everything observable with the model.
fn check<const P: usize, const SUB: usize, S: Storage>(
    holder: &Holder<P, SUB, S>,
    model: &mut Model<P, SUB>,
) -> Result<(), String> {
    let pager = holder.pager();
    ensure!(!pager.is_poisoned(), "the pager is poisoned");
    ensure!(
        pager.generation() == model.generation,
        "generation {} but the model expects {} (one commit per allocation change, none otherwise)",
        pager.generation(),
        model.generation
    );

    // Allocation state.
    let parents = model.parents();
    ensure!(
        model.regular.keys().all(|page| !parents.contains(page)),
        "model: a regular page is also a parent page"
    );
    let mut expected_pages: Vec<u64> = model.regular.keys().copied().collect();
    expected_pages.extend(&parents);
    expected_pages.sort_unstable();
    let listed: Vec<u64> = pager.iter_allocated_pages().map(PageId::raw).collect();
    ensure!(
        listed == expected_pages,
        "iter_allocated_pages {listed:?}, model {expected_pages:?} (regular {:?}, parents {parents:?})",
        model.regular.keys().collect::<Vec<_>>()
    );
    ensure!(
        pager.allocated_page_count() == expected_pages.len() as u64,
        "allocated_page_count {} but {} pages are listed",
        pager.allocated_page_count(),
        expected_pages.len()
    );
    let listed: Vec<u64> = pager
        .iter_allocated_protected_pages()
        .map(ProtectedPageId::raw)
        .collect();
    let expected: Vec<u64> = model.protected.keys().copied().collect();
    ensure!(
        listed == expected,
        "iter_allocated_protected_pages {listed:?}, model {expected:?}"
    );
    ensure!(
        pager.protected_page_count() == expected.len() as u64,
        "protected_page_count {}, model {}",
        pager.protected_page_count(),
        expected.len()
    );

    // Page accounting: page_count = free + regular + 2 per protected page + directory blocks
    // (four pages each, never freed) + internal pages (3 + 2 per bitmap group + the two slots of
    // group table page 0, format 3; the model's files stay below the 62 groups that page covers
    // at every page size, SPEC.md §2.1).
    let page_count = pager.page_count();
    let used = pager.free_page_count() + pager.allocated_page_count() + 2 * expected.len() as u64;
    ensure!(
        used <= page_count,
        "free {} + allocated {} + 2 × protected {} exceeds page_count {page_count}",
        pager.free_page_count(),
        pager.allocated_page_count(),
        expected.len()
    );
    let groups = page_count.div_ceil(Model::<P, SUB>::GROUP);
    ensure!(
        groups <= 62,
        "the model's file outgrew table page 0: {groups} groups"
    );
    let internal = 3 + 2 * groups + 2;
    let directory = (page_count - used).checked_sub(internal);
    ensure!(
        directory.is_some_and(|d| d % 4 == 0 && d >= model.directory_pages),
        "page accounting: {page_count} pages, {used} free or in use, {internal} internal: \
         {directory:?} directory pages (at least {} before, a multiple of 4)",
        model.directory_pages
    );
    model.directory_pages = directory.unwrap_or(0);
    ensure!(
        expected.is_empty() || model.directory_pages >= 4,
        "protected pages exist but no directory block is counted"
    );
    ensure!(
        page_count * P as u64 <= pager.storage().len_bytes(),
        "page_count {page_count} × {P} exceeds the storage length {}",
        pager.storage().len_bytes()
    );

    // Contents.
    for (&page, data) in &model.regular {
        ensure!(
            pager.is_allocated(PageId::from_raw(page)),
            "regular page {page} not allocated"
        );
        let bytes = read_page(pager, page)?;
        ensure!(
            bytes == data.bytes,
            "regular page {page} differs from the model at byte {:?}",
            bytes.iter().zip(&data.bytes).position(|(a, b)| a != b)
        );
    }
    for (&id, content) in &model.protected {
        let protected = ProtectedPageId::<P>::from_raw(id);
        ensure!(
            pager.is_protected_allocated(protected),
            "protected page {id} not allocated"
        );
        let page = ok(protected.get(pager), &format!("get protected {id}"))?;
        ensure!(
            page.as_bytes() == &content[..],
            "protected page {id} differs from the model at byte {:?}",
            page.as_bytes()
                .iter()
                .zip(content)
                .position(|(a, b)| a != b)
        );
    }
    for (&raw, data) in &model.subs {
        let bytes = read_sub::<P, SUB, S>(pager, raw)?;
        ensure!(
            bytes == data.bytes,
            "sub-page {raw} differs from the model (read through its parent)"
        );
    }

    // Freed ids give typed errors.
    for (&page, &maybe_reserved) in &model.freed_pages {
        let id = PageId::<P>::from_raw(page);
        ensure!(!pager.is_allocated(id), "freed page {page} is allocated");
        let mut allowed = vec![MappedPageError::NotAllocated { page }];
        if maybe_reserved {
            allowed.push(MappedPageError::ReservedPage { page });
        }
        expect_error(id.get(pager), &allowed, "get of a freed page")?;
    }
    for &id in &model.freed_protected {
        let protected = ProtectedPageId::<P>::from_raw(id);
        ensure!(
            !pager.is_protected_allocated(protected),
            "freed protected page {id} is allocated"
        );
        expect_error(
            protected.get(pager),
            &[MappedPageError::ProtectedNotAllocated { id }],
            "get of a freed protected page",
        )?;
    }

    // The allocator's own view, in sub-page mode.
    if let Holder::Sub(sub) = holder {
        let listed: Vec<u64> = sub.iter_allocated().map(SubPageId::raw).collect();
        let expected: Vec<u64> = model.subs.keys().copied().collect();
        ensure!(
            listed == expected,
            "iter_allocated {listed:?}, model {expected:?}"
        );
        ensure!(
            sub.allocated_count() == expected.len() as u64
                && sub.parent_page_count() == parents.len() as u64
                && sub.free_slot_count() == model.free_slots().len() as u64,
            "sub-page counts: allocated {} parents {} free slots {}; model {} {} {}",
            sub.allocated_count(),
            sub.parent_page_count(),
            sub.free_slot_count(),
            expected.len(),
            parents.len(),
            model.free_slots().len()
        );
        for (&raw, data) in &model.subs {
            let id = SubPageId::<P, SUB>::from_raw(raw);
            ensure!(sub.is_allocated(id), "sub-page {raw} not allocated");
            let page = ok(id.get(sub), &format!("get sub-page {raw}"))?;
            ensure!(
                page.as_bytes() == &data.bytes[..],
                "sub-page {raw} differs from the model"
            );
        }
        for &raw in &model.freed_subs {
            let id = SubPageId::<P, SUB>::from_raw(raw);
            ensure!(!sub.is_allocated(id), "freed sub-page {raw} is allocated");
            let error = MappedPageError::SubPageNotAllocated {
                page: id.parent().raw(),
                slot: id.slot(),
            };
            expect_error(id.get(sub), &[error], "get of a freed sub-page")?;
        }
    }
    Ok(())
}

// ----- running one op --------------------------------------------------------------------------

/// Runs `op` on the system and the model; returns the number of commits it must have made.
fn step<B: Backend, const P: usize, const SUB: usize>(
    backend: &mut B,
    holder: &mut Holder<P, SUB, B::S>,
    model: &mut Model<P, SUB>,
    op: &Op,
) -> Result<u64, String> {
    let per = Model::<P, SUB>::PER;
    match *op {
        Op::Alloc => {
            let pager = holder.pager_mut();
            let id = ok(pager.alloc(), "alloc")?.raw();
            model.take_page(id)?;
            let bytes = read_page(pager, id)?;
            model.regular.insert(
                id,
                Data {
                    bytes,
                    durable: false,
                },
            );
            Ok(1)
        }
        Op::AllocBulk(count) => {
            let pager = holder.pager_mut();
            let ids = ok(pager.alloc_bulk(count), "alloc_bulk")?;
            ensure!(
                ids.len() == count,
                "alloc_bulk({count}) gave {} ids",
                ids.len()
            );
            for id in ids {
                let id = id.raw();
                model.take_page(id)?;
                let bytes = read_page(pager, id)?;
                let data = Data {
                    bytes,
                    durable: false,
                };
                ensure!(
                    model.regular.insert(id, data).is_none(),
                    "alloc_bulk gave page {id} twice"
                );
            }
            Ok(u64::from(count > 0))
        }
        Op::Free { pick, bad } => {
            let pager = holder.pager_mut();
            let invalid = bad.and_then(|(bad, _)| match bad {
                Bad::Duplicate(_) => None,
                _ => model.bad_page(bad, &[], pager.page_count()),
            });
            if let Some((page, errors)) = invalid {
                expect_error(pager.free(PageId::from_raw(page)), &errors, "free")?;
                return Ok(0);
            }
            let Some(page) = Model::<P, SUB>::nth(&model.regular, pick) else {
                return Ok(0);
            };
            ok(pager.free(PageId::from_raw(page)), "free")?;
            model.regular.remove(&page);
            model.page_freed(page);
            Ok(1)
        }
        Op::FreeBulk { select, bad } => {
            let pager = holder.pager_mut();
            let batch = Model::<P, SUB>::select(&model.regular, select);
            let invalid = bad.and_then(|(bad, position)| {
                let (page, errors) = model.bad_page(bad, &batch, pager.page_count())?;
                Some((insert_at(&batch, page, position), errors))
            });
            if let Some((ids, errors)) = invalid {
                let ids = ids.into_iter().map(PageId::from_raw).collect();
                expect_error(pager.free_bulk(ids), &errors, "free_bulk")?;
                return Ok(0);
            }
            let ids = batch.iter().copied().map(PageId::from_raw).collect();
            ok(pager.free_bulk(ids), "free_bulk")?;
            for &page in &batch {
                model.regular.remove(&page);
                model.page_freed(page);
            }
            Ok(u64::from(!batch.is_empty()))
        }
        Op::Write { pick, span } => {
            let Some(page) = Model::<P, SUB>::nth(&model.regular, pick) else {
                return Ok(0);
            };
            let pager = holder.pager_mut();
            let bytes = ok(PageId::<P>::from_raw(page).get_mut(pager), "get_mut")?;
            span.apply(bytes.as_bytes_mut());
            let data = model.regular.get_mut(&page).expect("picked from the model");
            span.apply(&mut data.bytes);
            data.durable = false;
            Ok(0)
        }
        Op::Sync { pick } => {
            let Some(page) = Model::<P, SUB>::nth(&model.regular, pick) else {
                return Ok(0);
            };
            ok(
                holder.pager_mut().sync_page(PageId::from_raw(page)),
                "sync_page",
            )?;
            model.regular.get_mut(&page).expect("picked").durable = true;
            Ok(0)
        }
        Op::SyncAll => {
            match holder {
                Holder::Sub(sub) => ok(sub.sync_all(), "SubPageAllocator::sync_all")?,
                _ => ok(holder.pager_mut().sync_all(), "sync_all")?,
            }
            for data in model.regular.values_mut().chain(model.subs.values_mut()) {
                data.durable = true;
            }
            Ok(0)
        }
        Op::AllocProtected | Op::AllocProtectedBulk(_) => {
            let pager = holder.pager_mut();
            let (ids, count) = match *op {
                Op::AllocProtected => (vec![ok(pager.alloc_protected(), "alloc_protected")?], 1),
                Op::AllocProtectedBulk(count) => (
                    ok(pager.alloc_protected_bulk(count), "alloc_protected_bulk")?,
                    count,
                ),
                _ => unreachable!(),
            };
            let ids: Vec<u64> = ids.into_iter().map(ProtectedPageId::raw).collect();
            let expected = model.lowest_free_protected(count);
            ensure!(
                ids == expected,
                "protected allocation gave {ids:?}, expected the lowest free ids {expected:?}"
            );
            for id in ids {
                model.protected.insert(id, vec![0; P]);
                model.freed_protected.remove(&id);
            }
            if count > 0 {
                model.protected_allocated();
            }
            Ok(u64::from(count > 0))
        }
        Op::FreeProtected { pick, bad } => {
            let pager = holder.pager_mut();
            let invalid = bad.and_then(|(bad, _)| match bad {
                Bad::Duplicate(_) => None,
                _ => model.bad_protected(bad, &[]),
            });
            if let Some((id, error)) = invalid {
                let result = pager.free_protected(ProtectedPageId::from_raw(id));
                expect_error(result, &[error], "free_protected")?;
                return Ok(0);
            }
            let Some(id) = Model::<P, SUB>::nth(&model.protected, pick) else {
                return Ok(0);
            };
            ok(
                pager.free_protected(ProtectedPageId::from_raw(id)),
                "free_protected",
            )?;
            model.protected.remove(&id);
            model.freed_protected.insert(id);
            Ok(1)
        }
        Op::FreeProtectedBulk { select, bad } => {
            let pager = holder.pager_mut();
            let batch = Model::<P, SUB>::select(&model.protected, select);
            let invalid = bad.and_then(|(bad, position)| {
                let (id, error) = model.bad_protected(bad, &batch)?;
                Some((insert_at(&batch, id, position), error))
            });
            if let Some((ids, error)) = invalid {
                let ids = ids.into_iter().map(ProtectedPageId::from_raw).collect();
                expect_error(
                    pager.free_protected_bulk(ids),
                    &[error],
                    "free_protected_bulk",
                )?;
                return Ok(0);
            }
            let ids = batch
                .iter()
                .copied()
                .map(ProtectedPageId::from_raw)
                .collect();
            ok(pager.free_protected_bulk(ids), "free_protected_bulk")?;
            for &id in &batch {
                model.protected.remove(&id);
                model.freed_protected.insert(id);
            }
            Ok(u64::from(!batch.is_empty()))
        }
        Op::Commit { pick, span } | Op::Abandon { pick, span } => {
            let commit = matches!(op, Op::Commit { .. });
            let pager = holder.pager_mut();
            let Some(id) = Model::<P, SUB>::nth(&model.protected, pick) else {
                // Nothing to write: a freed id must be refused.
                if let Some(id) = Model::<P, SUB>::nth_set(&model.freed_protected, pick) {
                    let result = ProtectedPageId::<P>::from_raw(id).get_mut(pager);
                    let error = MappedPageError::ProtectedNotAllocated { id };
                    expect_error(result, &[error], "get_mut of a freed protected page")?;
                }
                return Ok(0);
            };
            let protected = ProtectedPageId::<P>::from_raw(id);
            let mut writer = ok(protected.get_mut(pager), "protected get_mut")?;
            ensure!(writer.id() == protected, "writer.id() {:?}", writer.id());
            let content = model.protected.get_mut(&id).expect("picked");
            ensure!(
                writer.page().as_bytes() == &content[..],
                "the writer of protected page {id} does not start from the committed content"
            );
            span.apply(writer.page_mut().as_bytes_mut());
            if commit {
                ok(writer.commit(), "commit")?;
                span.apply(content);
                Ok(1)
            } else {
                // The writer goes out of scope uncommitted: the committed content must not change
                // (`check` reads it back next).
                Ok(0)
            }
        }
        Op::SubAlloc => {
            let free_slots = model.free_slots();
            let sub = holder.sub_mut(model.sub_ids())?;
            let raw = ok(sub.alloc(), "SubPageAllocator::alloc")?.raw();
            let commits = match free_slots.first() {
                Some(&lowest) => {
                    ensure!(
                        raw == lowest,
                        "sub alloc gave {raw}, expected the lowest free slot {lowest}"
                    );
                    0
                }
                None => {
                    ensure!(
                        raw % per == 0,
                        "sub alloc of a new parent gave slot {}",
                        raw % per
                    );
                    model.take_page(raw / per)?;
                    1
                }
            };
            let bytes = read_sub::<P, SUB, _>(holder.pager(), raw)?;
            model.subs.insert(
                raw,
                Data {
                    bytes,
                    durable: false,
                },
            );
            model.freed_subs.remove(&raw);
            Ok(commits)
        }
        Op::SubAllocBulk(count) => {
            let free_slots = model.free_slots();
            let sub = holder.sub_mut(model.sub_ids())?;
            let ids = ok(sub.alloc_bulk(count), "SubPageAllocator::alloc_bulk")?;
            let mut ids: Vec<u64> = ids.into_iter().map(SubPageId::raw).collect();
            ids.sort_unstable();
            ensure!(
                ids.len() == count,
                "sub alloc_bulk({count}) gave {} ids",
                ids.len()
            );
            let reused = count.min(free_slots.len());
            let held = model.parents();
            let (old, new): (Vec<u64>, Vec<u64>) =
                ids.iter().partition(|&&raw| held.contains(&(raw / per)));
            ensure!(
                old == free_slots[..reused],
                "sub alloc_bulk({count}) took {old:?} from held parents, expected {:?}",
                &free_slots[..reused]
            );
            let new_parents: BTreeSet<u64> = new.iter().map(|raw| raw / per).collect();
            let wanted = (count - reused).div_ceil(per as usize);
            ensure!(
                new_parents.len() == wanted,
                "sub alloc_bulk({count}) took {} new parents, expected {wanted}",
                new_parents.len()
            );
            for &page in &new_parents {
                model.take_page(page)?;
            }
            for raw in ids {
                let bytes = read_sub::<P, SUB, _>(holder.pager(), raw)?;
                let data = Data {
                    bytes,
                    durable: false,
                };
                ensure!(
                    model.subs.insert(raw, data).is_none(),
                    "sub alloc_bulk gave {raw} twice or an owned id"
                );
                model.freed_subs.remove(&raw);
            }
            Ok(u64::from(!new_parents.is_empty()))
        }
        Op::SubFree { pick, bad } => {
            let invalid = bad.and_then(|(bad, _)| match bad {
                Bad::Duplicate(_) => None,
                _ => model.bad_sub(bad, &[]),
            });
            let sub = holder.sub_mut(model.sub_ids())?;
            if let Some((raw, error)) = invalid {
                let result = sub.free(SubPageId::from_raw(raw));
                expect_error(result, &[error], "SubPageAllocator::free")?;
                return Ok(0);
            }
            let Some(raw) = Model::<P, SUB>::nth(&model.subs, pick) else {
                return Ok(0);
            };
            ok(sub.free(SubPageId::from_raw(raw)), "SubPageAllocator::free")?;
            Ok(sub_freed(model, &[raw]))
        }
        Op::SubFreeBulk { select, bad } => {
            let batch = Model::<P, SUB>::select(&model.subs, select);
            let invalid = bad.and_then(|(bad, position)| {
                let (raw, error) = model.bad_sub(bad, &batch)?;
                Some((insert_at(&batch, raw, position), error))
            });
            let sub = holder.sub_mut(model.sub_ids())?;
            if let Some((ids, error)) = invalid {
                let ids = ids.into_iter().map(SubPageId::from_raw).collect();
                expect_error(sub.free_bulk(ids), &[error], "SubPageAllocator::free_bulk")?;
                return Ok(0);
            }
            let ids = batch.iter().copied().map(SubPageId::from_raw).collect();
            ok(sub.free_bulk(ids), "SubPageAllocator::free_bulk")?;
            Ok(sub_freed(model, &batch))
        }
        Op::SubWrite { pick, span } => {
            let Some(raw) = Model::<P, SUB>::nth(&model.subs, pick) else {
                return Ok(0);
            };
            let sub = holder.sub_mut(model.sub_ids())?;
            let bytes = ok(
                SubPageId::<P, SUB>::from_raw(raw).get_mut(sub),
                "sub get_mut",
            )?;
            span.apply(bytes.as_bytes_mut());
            let data = model.subs.get_mut(&raw).expect("picked");
            span.apply(&mut data.bytes);
            data.durable = false;
            Ok(0)
        }
        Op::SubSync { pick } => {
            let Some(raw) = Model::<P, SUB>::nth(&model.subs, pick) else {
                return Ok(0);
            };
            let sub = holder.sub_mut(model.sub_ids())?;
            ok(sub.sync_parent(SubPageId::from_raw(raw)), "sync_parent")?;
            let parent = raw / per;
            for (_, data) in model.subs.range_mut(parent * per..(parent + 1) * per) {
                data.durable = true;
            }
            Ok(0)
        }
        Op::SubRebuild { bad } => {
            let mut pager = holder.take_pager();
            if let Some((bad, position)) = bad
                && let Some((raw, errors)) = model.bad_rebuild(bad, pager.page_count())
            {
                let ids = insert_at(&model.sub_ids(), SubPageId::from_raw(raw), position);
                match SubPageAllocator::<P, SUB, B::S>::try_rebuild(pager, ids) {
                    Ok(_) => return Err(format!("rebuild with sub-page {raw} succeeded")),
                    Err((e, back)) => {
                        pager = back;
                        if !same_error(&e, &errors) {
                            *holder = Holder::Pager(pager);
                            return Err(format!("rebuild: expected {errors:?}, got {e:?}"));
                        }
                    }
                }
            }
            // Rebuild from the owned ids in reverse order: the order must not matter.
            let mut ids = model.sub_ids();
            ids.reverse();
            match SubPageAllocator::try_rebuild(pager, ids) {
                Ok(sub) => *holder = Holder::Sub(sub),
                Err((e, pager)) => {
                    *holder = Holder::Pager(pager);
                    return Err(format!("rebuild from the model's ids: {e:?}"));
                }
            }
            Ok(0)
        }
        Op::Reopen => {
            let pager = holder.take_pager();
            *holder = Holder::Pager(backend.reopen(pager)?);
            Ok(0)
        }
        Op::Crash { mask_seed } => {
            let pager = holder.take_pager();
            let Some(recovered) = backend.crash(&pager, mask_seed) else {
                *holder = Holder::Pager(backend.reopen(pager)?);
                return Ok(0);
            };
            drop(pager);
            let recovered = recovered?;
            // Bytes not known to be durable may hold anything: adopt what survived.
            for (&page, data) in model.regular.iter_mut().filter(|(_, d)| !d.durable) {
                data.bytes = read_page(&recovered, page)?;
            }
            for (&raw, data) in model.subs.iter_mut().filter(|(_, d)| !d.durable) {
                data.bytes = read_sub::<P, SUB, _>(&recovered, raw)?;
            }
            *holder = Holder::Pager(recovered);
            Ok(0)
        }
    }
}

/// Updates the model after sub-pages were freed; returns the commits (one if a parent emptied).
fn sub_freed<const P: usize, const SUB: usize>(model: &mut Model<P, SUB>, raws: &[u64]) -> u64 {
    let before = model.parents();
    for &raw in raws {
        model.subs.remove(&raw);
        model.freed_subs.insert(raw);
    }
    let after = model.parents();
    let emptied: Vec<u64> = before.difference(&after).copied().collect();
    for &page in &emptied {
        model.page_freed(page);
    }
    u64::from(!emptied.is_empty())
}

/// Runs `ops` from a new file and checks the system against the model after every op.
fn run<B: Backend, const P: usize, const SUB: usize>(ops: &[Op]) -> Result<(), TestCaseError> {
    let (mut backend, pager) = B::create::<P>().map_err(TestCaseError::fail)?;
    let mut model = Model::<P, SUB>::new(pager.generation());
    let mut holder = Holder::<P, SUB, B::S>::Pager(pager);
    check(&holder, &mut model).map_err(|e| TestCaseError::fail(format!("after create: {e}")))?;
    for (i, op) in ops.iter().enumerate() {
        let result = step(&mut backend, &mut holder, &mut model, op).and_then(|commits| {
            model.generation += commits;
            check(&holder, &mut model)
        });
        if let Err(e) = result {
            return Err(TestCaseError::fail(format!("op #{i} {op:?}: {e}")));
        }
    }
    Ok(())
}

// ----- the tests -------------------------------------------------------------------------------

/// `cases` explicitly (no environment override), failures persisted next to this file as
/// `tests/model.proptest-regressions` (explicit, whatever directories lie above the workspace).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    }
}

// 1,580 cases per run. `SimStorage` cases cost well under a millisecond each in release; file
// cases are bound by the file system's sync latency (two syncs per commit), so they get fewer.
proptest! {
    #![proptest_config(config(1000))]
    #[test]
    fn sim_1024(ops in ops()) {
        run::<Sim, 1024, 256>(&ops)?;
    }
}

proptest! {
    #![proptest_config(config(400))]
    #[test]
    fn sim_4096(ops in ops()) {
        run::<Sim, 4096, 512>(&ops)?;
    }
}

proptest! {
    #![proptest_config(config(120))]
    #[test]
    fn mmap_1024(ops in ops()) {
        run::<Mmap, 1024, 256>(&ops)?;
    }
}

proptest! {
    #![proptest_config(config(60))]
    #[test]
    fn mmap_4096(ops in ops()) {
        run::<Mmap, 4096, 512>(&ops)?;
    }
}
