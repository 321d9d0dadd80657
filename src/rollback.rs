//! Rollback (SPEC.md §4.8): the explicit, opt-in recovery for the one case recovery refuses on
//! purpose, a damaged metadata copy named by a valid superblock. A [`RollbackPlan`] says what
//! making the older copy current would lose; [`RollbackPlan::apply`] does it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::MappedPageError;
use crate::format::{Geometry, MetaSlot, Superblock};
use crate::readonly::{ReadOnlyMap, Repair};
use crate::recovery::table::Candidates;
use crate::recovery::{
    MirrorRepair, RecoveryDecision, decode_candidates, detect_page_size, load_copy,
    recover_decoded, repair,
};
use crate::state::AllocState;
use crate::storage::{MmapStorage, Storage};

/// What a rollback loses, as far as the damaged copy tells.
///
/// The damaged copy is the one the superblock names. When it still loads (its own page and
/// every slot it uses are intact, but it is not the copy the superblock recorded), the loss is
/// known page by page; otherwise it cannot be known, and [`RollbackLoss::Unknown`] says why.
///
/// ```
/// use mappedpages::RollbackLoss;
///
/// let loss = RollbackLoss::Unknown { reason: "copy B does not decode".into(), damaged_page_count: None };
/// assert!(!loss.is_known());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RollbackLoss {
    /// The damaged copy loads: the difference between its state and the older copy's.
    Known {
        /// Pages the damaged copy records (its page count).
        damaged_page_count: u64,
        /// Pages the older copy records; the file keeps its length, pages past this count are
        /// reused by the next growth.
        page_count_after: u64,
        /// Regular pages allocated in the damaged copy that are free (or past the end) after
        /// the rollback: allocations the lost commits made.
        lost_allocations: Vec<Range<u64>>,
        /// Regular pages free in the damaged copy that are allocated again after the rollback:
        /// frees the lost commits made. Their bytes are whatever was written into them since.
        restored_allocations: Vec<Range<u64>>,
        /// Protected page ids allocated in the damaged copy and not after the rollback.
        lost_protected: Vec<u64>,
        /// Protected page ids freed by the lost commits, allocated again after the rollback.
        restored_protected: Vec<u64>,
        /// Protected page ids whose committed content goes back to an older commit's.
        older_protected_content: Vec<u64>,
    },
    /// The damaged copy does not load, so what the lost commits changed cannot be read from it.
    Unknown {
        /// Why the damaged copy cannot tell.
        reason: String,
        /// The page count the damaged copy records, if it decodes.
        damaged_page_count: Option<u64>,
    },
}

impl RollbackLoss {
    /// True when the loss is known page by page ([`RollbackLoss::Known`]).
    ///
    /// ```
    /// let loss = mappedpages::RollbackLoss::Unknown { reason: String::new(), damaged_page_count: Some(16) };
    /// assert!(!loss.is_known());
    /// ```
    pub fn is_known(&self) -> bool {
        matches!(self, RollbackLoss::Known { .. })
    }
}

/// A rollback of a file that recovery refuses because the metadata copy its superblock names is
/// damaged (SPEC.md §4.2 row 6, §4.8): what making the other, older copy current would lose, and
/// how to do it.
///
/// [`plan`](Self::plan) reads the file under a shared lock and writes nothing (a dry run);
/// [`apply`](Self::apply) takes the writer's exclusive lock, checks that the file is still the
/// one planned for, and makes the older copy current: it writes the superblock naming it (one
/// barrier), then makes the repairs a read-write open would make (SPEC.md §4.3). A crash during
/// `apply` leaves the file either refused as before or rolled back.
///
/// ```
/// use mappedpages::{MappedPageError, Pager, RollbackPlan};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db.bin");
/// let mut pager = Pager::<1024>::create(&path).unwrap();
/// let kept = pager.alloc().unwrap(); // generation 2, copy B
/// pager.alloc().unwrap(); // generation 3, copy A: the one the superblock names
/// drop(pager);
/// let mut image = std::fs::read(&path).unwrap();
/// image[1024 + 200] ^= 1; // damage copy A
/// std::fs::write(&path, &image).unwrap();
/// assert!(matches!(Pager::<1024>::open(&path), Err(MappedPageError::CorruptMetadata { .. })));
///
/// let plan = RollbackPlan::plan(&path).unwrap();
/// assert_eq!((plan.damaged_generation, plan.target_generation), (3, 2));
/// assert_eq!(std::fs::read(&path).unwrap(), image, "planning writes nothing");
/// plan.apply().unwrap();
/// let pager = Pager::<1024>::open(&path).unwrap();
/// assert_eq!(pager.generation(), 2);
/// assert!(pager.is_allocated(kept));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RollbackPlan {
    /// The file's page size.
    pub page_size: u64,
    /// Why recovery refuses the file (the detail of [`MappedPageError::CorruptMetadata`]).
    pub why_refused: String,
    /// The page of the damaged copy, the one the superblock names (1 = A, 2 = B).
    pub damaged_copy_page: u64,
    /// The generation the superblock records for the damaged copy: the last acknowledged commit.
    pub damaged_generation: u64,
    /// The page of the older copy the rollback makes current.
    pub target_copy_page: u64,
    /// The older copy's generation: the file's generation after the rollback.
    pub target_generation: u64,
    /// What the commits `target_generation + 1 ..= damaged_generation` changed, as far as the
    /// damaged copy tells.
    pub loss: RollbackLoss,
    /// Protected page ids whose committed copy in the older state fails its CRC: after the
    /// rollback, reading them gives [`MappedPageError::CorruptProtectedPage`] (a commit in flight
    /// may have staged into that copy).
    pub damaged_protected: Vec<u64>,
    /// What `apply` writes after the superblock: the repairs of SPEC.md §4.3 for the older
    /// state (the damaged copy and the lost commits' slot pages are scrubbed).
    pub repairs: Vec<Repair>,
    path: Option<PathBuf>,
    /// The superblock record on disk when the plan was made, and the one `apply` writes.
    current_superblock: Vec<u8>,
    superblock: Superblock,
    scrub_pages: Vec<u64>,
    mirror_repairs: Vec<MirrorRepair>,
}

impl RollbackPlan {
    /// Plans the rollback of the file at `path`, under a shared lock and without writing
    /// anything (the page size is read from the file).
    ///
    /// Errors: [`MappedPageError::NothingToRollBack`] when recovery opens the file as it is;
    /// [`MappedPageError::RollbackRefused`] when recovery refuses it for a reason a rollback
    /// cannot fix (the older copy is damaged too, is not older, or the superblock itself is
    /// damaged); the errors of [`ReadOnlyPager::open`](crate::ReadOnlyPager::open) for a file
    /// that cannot be read or is not a file of this kind.
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, RollbackPlan};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("db.bin");
    /// drop(Pager::<1024>::create(&path).unwrap());
    /// let result = RollbackPlan::plan(&path);
    /// assert!(matches!(result, Err(MappedPageError::NothingToRollBack { generation: 1 })));
    /// ```
    pub fn plan(path: impl AsRef<Path>) -> Result<RollbackPlan, MappedPageError> {
        let path = path.as_ref();
        let map = ReadOnlyMap::open(path)?;
        map.advise_random(true);
        let mut plan = plan_image(map.bytes())?;
        plan.path = Some(path.to_path_buf());
        Ok(plan)
    }

    /// [`plan`](Self::plan) for an image held by any [`Storage`] (a [`crate::SimStorage`] in
    /// tests); apply it with [`apply_in`](Self::apply_in).
    ///
    /// ```
    /// use mappedpages::{MappedPageError, Pager, RollbackPlan, SimStorage};
    ///
    /// let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// let storage = pager.into_storage();
    /// assert!(matches!(RollbackPlan::plan_in(&storage), Err(MappedPageError::NothingToRollBack { .. })));
    /// ```
    pub fn plan_in<S: Storage>(storage: &S) -> Result<RollbackPlan, MappedPageError> {
        plan_image(storage.bytes())
    }

    /// Makes the older copy current in the file the plan was made for: takes the writer's
    /// exclusive lock ([`MappedPageError::Locked`] while a [`crate::Pager`] or a reader holds
    /// the file), plans again and checks the file is unchanged, writes the superblock naming the
    /// older copy (one barrier), then makes the repairs of [`repairs`](Self::repairs).
    ///
    /// A plan made by [`plan_in`](Self::plan_in) names no file: this fails with
    /// [`MappedPageError::RollbackRefused`]; use [`apply_in`](Self::apply_in).
    ///
    /// ```no_run
    /// let plan = mappedpages::RollbackPlan::plan("db.bin")?;
    /// println!("{plan}");
    /// plan.apply()?;
    /// # Ok::<(), mappedpages::MappedPageError>(())
    /// ```
    pub fn apply(&self) -> Result<(), MappedPageError> {
        let Some(path) = &self.path else {
            return Err(MappedPageError::RollbackRefused {
                detail: "this plan was made from a storage, not a file: apply it with apply_in"
                    .into(),
            });
        };
        self.apply_in(&mut MmapStorage::open(path)?)
    }

    /// [`apply`](Self::apply) on `storage`, which must hold the image the plan was made from
    /// (else [`MappedPageError::RollbackRefused`], nothing written).
    ///
    /// ```
    /// use mappedpages::{Pager, RollbackPlan, SimStorage};
    ///
    /// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
    /// pager.alloc().unwrap(); // generation 2 in copy B
    /// let mut image = pager.into_storage().into_image();
    /// image[2 * 1024 + 300] ^= 1; // damage copy B, the one the superblock names
    /// let mut storage = SimStorage::from_image(image);
    /// let plan = RollbackPlan::plan_in(&storage).unwrap();
    /// plan.apply_in(&mut storage).unwrap();
    /// assert_eq!(Pager::<1024, SimStorage>::open_in(storage).unwrap().generation(), 1);
    /// ```
    pub fn apply_in<S: Storage>(&self, storage: &mut S) -> Result<(), MappedPageError> {
        let fresh = plan_image(storage.bytes())?;
        if !fresh.same_decision(self) {
            return Err(MappedPageError::RollbackRefused {
                detail: "the file changed since this plan was made: plan again and read what \
                         the new plan loses"
                    .into(),
            });
        }
        let geometry = Geometry::new(page_size_usize(fresh.page_size)?);
        repair::write_superblock(storage, geometry, fresh.superblock)?;
        repair::apply_repairs(storage, geometry, &fresh.scrub_pages, &fresh.mirror_repairs)
    }

    /// Whether `other` was planned from the same image state: same superblock on disk, same
    /// superblock to write, same repairs.
    fn same_decision(&self, other: &RollbackPlan) -> bool {
        self.current_superblock == other.current_superblock
            && self.superblock == other.superblock
            && self.scrub_pages == other.scrub_pages
            && self.mirror_repairs == other.mirror_repairs
    }

    /// Commits the rollback loses: `damaged_generation − target_generation`.
    ///
    /// ```no_run
    /// let plan = mappedpages::RollbackPlan::plan("db.bin")?;
    /// println!("loses {} commit(s)", plan.lost_commits());
    /// # Ok::<(), mappedpages::MappedPageError>(())
    /// ```
    pub fn lost_commits(&self) -> u64 {
        self.damaged_generation - self.target_generation
    }
}

fn page_size_usize(page_size: u64) -> Result<usize, MappedPageError> {
    usize::try_from(page_size).map_err(|_| MappedPageError::NotAMappedPagesFile)
}

fn refused(detail: String) -> MappedPageError {
    MappedPageError::RollbackRefused { detail }
}

/// The plan for `image` (SPEC.md §4.8): refused state checked, older copy checked by running
/// recovery's decision on the image as it will be after the superblock write.
fn plan_image(image: &[u8]) -> Result<RollbackPlan, MappedPageError> {
    let geometry = Geometry::new(detect_page_size(image)?);
    let mut candidates = decode_candidates(image, geometry)?;
    let geometry = candidates.geometry;
    let (why_refused, current) = refused_state(&candidates, image)?;
    let (damaged, older) = (current.active_meta, current.active_meta.other());
    let superblock = older_superblock(&candidates, &current)?;
    candidates.superblock = Ok(superblock);
    let after = match recover_decoded(&candidates, image) {
        Ok(after) => after,
        Err(error) => {
            return Err(refused(format!(
                "the older metadata copy {older} (generation {}) does not load either: {error}",
                superblock.active_generation
            )));
        }
    };
    if after.decision != RecoveryDecision::Superblock || after.state.active_meta() != older {
        return Err(refused(format!(
            "with the superblock naming copy {older}, recovery would take copy {} of generation \
             {} ({:?}), not the older state: restore the file from a backup",
            after.state.active_meta(),
            after.state.generation(),
            after.decision
        )));
    }
    // The damaged copy is scrubbed with the leftovers of the lost commits, whether it decodes
    // or not: after the superblock names the older copy, no decision reads it (§4.8).
    let mut scrub_pages = after.scrub_pages.clone();
    let mut repairs = repair::planned(&after);
    if !scrub_pages.contains(&damaged.page()) {
        scrub_pages.insert(0, damaged.page());
        repairs.insert(
            0,
            Repair::ScrubPage {
                page: damaged.page(),
            },
        );
    }
    Ok(RollbackPlan {
        page_size: geometry.page_size(),
        why_refused,
        damaged_copy_page: damaged.page(),
        damaged_generation: current.active_generation,
        target_copy_page: older.page(),
        target_generation: superblock.active_generation,
        loss: loss_of(&candidates, image, geometry, damaged, &after.state),
        damaged_protected: damaged_protected(image, geometry, &after.state),
        repairs,
        path: None,
        current_superblock: image.get(..64).unwrap_or_default().to_vec(),
        superblock,
        scrub_pages,
        mirror_repairs: after.mirror_repairs.clone(),
    })
}

/// Recovery refuses `image` with a valid superblock (§4.2 row 6): why, and that superblock.
fn refused_state(
    candidates: &Candidates,
    image: &[u8],
) -> Result<(String, Superblock), MappedPageError> {
    let why_refused = match recover_decoded(candidates, image) {
        Ok(recovered) => {
            return Err(MappedPageError::NothingToRollBack {
                generation: recovered.state.generation(),
            });
        }
        Err(MappedPageError::CorruptMetadata { detail }) => detail,
        Err(other) => return Err(other),
    };
    match &candidates.superblock {
        Ok(current) => Ok((why_refused, *current)),
        Err(_) => Err(refused(format!(
            "the superblock is damaged too, and recovery already tries every copy then; none \
             loads ({why_refused}): restore the file from a backup"
        ))),
    }
}

/// The superblock naming the copy `current` does not name, if that copy decodes and is older.
fn older_superblock(
    candidates: &Candidates,
    current: &Superblock,
) -> Result<Superblock, MappedPageError> {
    let older = current.active_meta.other();
    let older_meta = candidates.meta(older).as_ref().map_err(|error| {
        refused(format!(
            "the other metadata copy, {older} (page {}), is damaged too ({error}): there is no \
             older state to roll back to; restore the file from a backup",
            older.page()
        ))
    })?;
    if older_meta.generation >= current.active_generation {
        return Err(refused(format!(
            "the other metadata copy, {older}, holds generation {}, not older than the \
             superblock's {}: it is not an earlier state of this file; restore from a backup",
            older_meta.generation, current.active_generation
        )));
    }
    let checksum = candidates.checksum(older).ok_or_else(|| {
        refused(format!(
            "metadata copy {older} lies past the end of the file"
        ))
    })?;
    Ok(Superblock {
        active_meta: older,
        active_generation: older_meta.generation,
        active_meta_checksum: checksum,
        ..*current
    })
}

/// What the damaged copy tells of the loss: page by page if it loads.
fn loss_of(
    candidates: &Candidates,
    image: &[u8],
    geometry: Geometry,
    damaged: MetaSlot,
    after: &AllocState,
) -> RollbackLoss {
    // Both states whole (format 3 loads groups on first use): the comparison reads every bit.
    let mut after = after.clone();
    if let Err(error) = after.load_all_groups(image) {
        return RollbackLoss::Unknown {
            reason: format!(
                "the older copy's bitmap of group {} is damaged",
                error.group
            ),
            damaged_page_count: None,
        };
    }
    match candidates.meta(damaged) {
        Ok(meta) => match load_copy(image, geometry, meta, damaged).and_then(|mut state| {
            state
                .load_all_groups(image)
                .map_err(|error| format!("the bitmap of group {} is damaged", error.group))?;
            Ok(state)
        }) {
            Ok(state) => known_loss(&state, &after, image),
            Err(why) => RollbackLoss::Unknown {
                reason: format!(
                    "the damaged copy {damaged} (generation {}) does not load: {why}",
                    meta.generation
                ),
                damaged_page_count: Some(meta.page_count),
            },
        },
        Err(error) => RollbackLoss::Unknown {
            reason: format!("the damaged copy {damaged} does not decode: {error}"),
            damaged_page_count: None,
        },
    }
}

/// Protected ids of `state` whose committed copy fails the CRC its entry records.
fn damaged_protected(image: &[u8], geometry: Geometry, state: &AllocState) -> Vec<u64> {
    let per_block = geometry.directory_entries_per_block();
    let mut ids = Vec::new();
    for (block, entries) in state.directory.blocks.iter().enumerate() {
        for (index, entry) in entries.entries.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let start = geometry.offset(entry.current_page());
            let bytes = usize::try_from(start).ok().and_then(|start| {
                image.get(start..start.checked_add(geometry.page_size() as usize)?)
            });
            if bytes.is_none_or(|bytes| crc32fast::hash(bytes) != entry.content_checksum) {
                ids.push(block as u64 * per_block + index as u64);
            }
        }
    }
    ids
}

/// The loss when the damaged copy loads: its state against the older one, page by page.
fn known_loss(damaged: &AllocState, after: &AllocState, image: &[u8]) -> RollbackLoss {
    let (mut lost, mut restored) = (Vec::new(), Vec::new());
    for page in changed_pages(damaged, after) {
        match (
            damaged.is_allocated_data_page(page, image) == Ok(true),
            after.is_allocated_data_page(page, image) == Ok(true),
        ) {
            (true, false) => push_page(&mut lost, page),
            (false, true) => push_page(&mut restored, page),
            _ => {}
        }
    }
    let (mut lost_protected, mut restored_protected, mut older_content) =
        (Vec::new(), Vec::new(), Vec::new());
    let capacity = damaged.directory.capacity().max(after.directory.capacity());
    for id in 0..capacity {
        match (damaged.directory.entry(id), after.directory.entry(id)) {
            (Some(_), None) => lost_protected.push(id),
            (None, Some(_)) => restored_protected.push(id),
            (Some(new), Some(old)) if new.content_generation != old.content_generation => {
                older_content.push(id);
            }
            _ => {}
        }
    }
    RollbackLoss::Known {
        damaged_page_count: damaged.page_count,
        page_count_after: after.page_count,
        lost_allocations: lost,
        restored_allocations: restored,
        lost_protected,
        restored_protected,
        older_protected_content: older_content,
    }
}

/// The pages whose allocation may differ between `a` and `b`, in increasing order: those of the
/// bitmap words that differ (compared a chunk of words at a time, so a file of 2^36 pages costs
/// a pass over its bitmaps, not a test per page), and every page either directory owns (a page
/// can be in use in both, once as a regular page and once as the directory's).
fn changed_pages(a: &AllocState, b: &AllocState) -> Vec<u64> {
    const CHUNK_WORDS: usize = 4096;
    let words = a.bitmap.word_count().max(b.bitmap.word_count());
    let mut pages: Vec<u64> = Vec::new();
    for first in (0..words).step_by(CHUNK_WORDS) {
        let count = CHUNK_WORDS.min(words - first);
        let (left, right) = (a.bitmap.words(first, count), b.bitmap.words(first, count));
        for (index, (x, y)) in left.iter().zip(&right).enumerate() {
            let mut diff = x ^ y;
            while diff != 0 {
                let bit = u64::from(diff.trailing_zeros());
                pages.push((first + index) as u64 * 64 + bit);
                diff &= diff - 1;
            }
        }
    }
    pages.extend(a.directory.owned_pages());
    pages.extend(b.directory.owned_pages());
    pages.sort_unstable();
    pages.dedup();
    pages
}

fn push_page(runs: &mut Vec<Range<u64>>, page: u64) {
    match runs.last_mut() {
        Some(last) if last.end == page => last.end = page + 1,
        _ => runs.push(page..page + 1),
    }
}

fn ranges_text(ranges: &[Range<u64>]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|range| match range.end - range.start {
            1 => range.start.to_string(),
            _ => format!("{}-{}", range.start, range.end - 1),
        })
        .collect();
    parts.join(", ")
}

fn ids_text(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = ids.iter().map(u64::to_string).collect();
    parts.join(", ")
}

fn copy_name(page: u64) -> &'static str {
    if page == MetaSlot::A.page() { "A" } else { "B" }
}

impl fmt::Display for RollbackLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollbackLoss::Known {
                damaged_page_count,
                page_count_after,
                lost_allocations,
                restored_allocations,
                lost_protected,
                restored_protected,
                older_protected_content,
            } => {
                writeln!(f, "page count: {damaged_page_count} -> {page_count_after}")?;
                writeln!(
                    f,
                    "pages allocated by the lost commits, free after: {}",
                    ranges_text(lost_allocations)
                )?;
                writeln!(
                    f,
                    "pages freed by the lost commits, allocated again after: {}",
                    ranges_text(restored_allocations)
                )?;
                writeln!(
                    f,
                    "protected pages allocated by the lost commits, gone after: {}",
                    ids_text(lost_protected)
                )?;
                writeln!(
                    f,
                    "protected pages freed by the lost commits, back after: {}",
                    ids_text(restored_protected)
                )?;
                writeln!(
                    f,
                    "protected pages whose content goes back to an older commit: {}",
                    ids_text(older_protected_content)
                )
            }
            RollbackLoss::Unknown {
                reason,
                damaged_page_count,
            } => {
                writeln!(
                    f,
                    "which pages the lost commits changed cannot be known: {reason}"
                )?;
                if let Some(count) = damaged_page_count {
                    writeln!(f, "the damaged copy records {count} pages")?;
                }
                writeln!(
                    f,
                    "after the rollback, every page those commits allocated is free again and \
                     every page they freed is allocated again, with whatever was written into it \
                     since"
                )
            }
        }
    }
}

impl fmt::Display for RollbackPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "recovery refuses the file: {}", self.why_refused)?;
        writeln!(
            f,
            "damaged: metadata copy {} (page {}), generation {}, named by the superblock",
            copy_name(self.damaged_copy_page),
            self.damaged_copy_page,
            self.damaged_generation
        )?;
        let lost = self.lost_commits();
        writeln!(
            f,
            "rollback: makes metadata copy {} (page {}), generation {}, current; loses {lost} \
             commit{} (generation{} {})",
            copy_name(self.target_copy_page),
            self.target_copy_page,
            self.target_generation,
            if lost == 1 { "" } else { "s" },
            if lost == 1 { "" } else { "s" },
            if lost == 1 {
                self.damaged_generation.to_string()
            } else {
                format!(
                    "{}..={}",
                    self.target_generation + 1,
                    self.damaged_generation
                )
            }
        )?;
        write!(f, "{}", self.loss)?;
        if !self.damaged_protected.is_empty() {
            writeln!(
                f,
                "protected pages damaged in the older state (they will read as corrupt): {}",
                ids_text(&self.damaged_protected)
            )?;
        }
        writeln!(
            f,
            "writes: the superblock (page 0, one barrier), then {} repair{} of the older state",
            self.repairs.len(),
            if self.repairs.len() == 1 { "" } else { "s" }
        )?;
        for repair in &self.repairs {
            match repair {
                Repair::ScrubPage { page } => writeln!(f, "  - scrub page {page}")?,
                Repair::RewriteSuperblock => writeln!(f, "  - rewrite the superblock")?,
                Repair::RestoreMirror { from, to } => {
                    writeln!(f, "  - copy directory mirror page {from} over page {to}")?;
                }
            }
        }
        Ok(())
    }
}
