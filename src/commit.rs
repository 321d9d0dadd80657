//! The commit protocol, as SPEC.md §3.2 numbers its steps. [`commit`] calls one function per
//! step, in SPEC's order:
//!
//! | SPEC §3.2 step | function |
//! |---|---|
//! | 1. plan folds | [`InFlight::step_1_plan_folds`] |
//! | 2. write folded slots | [`InFlight::step_2_write_folded_slots`] |
//! | 2b. write changed directory blocks | [`InFlight::step_2b_write_directory_blocks`] |
//! | 3. write `Y` | [`InFlight::step_3_write_metadata_copy`] |
//! | 4. barrier | [`Staged::step_4_barrier`] |
//! | 5. flip | [`Staged::step_5_flip`] |
//! | 6. barrier over page 0 | its result |
//! | 7. memory takes the new state | [`Staged::step_7_record`] ([`AllocState::committed`]) |
//!
//! Steps 1 to 3 are [`stage`]'s; the barriers of steps 4 and 6 run in place in [`commit`], or
//! with the pager's lock released in `SharedPager`'s group commit (SPEC.md §3.10), which calls
//! the same functions. Single-sync mode (§3.2.1) skips steps 5 and 6. The active metadata copy, the current slot of
//! every group and directory block, and the committed copy of every protected page are never
//! written; each step asserts the boundary it must not cross, and in debug builds every page is
//! decoded back and compared with what was encoded before its barrier. The deliberately broken
//! variants of each step ([`crate::mutants`]) live in [`hooks`], one function per step, named for
//! the step, so the main path reads as the correct protocol.

use std::io;
use std::ops::Range;

use crate::format::{
    DataCheck, DirectorySlot, Geometry, GroupSlotHeader, MAX_GENERATION, MetaPage, SCRUB_BYTES,
    Superblock, TableEntry, TablePageHeader, decode_directory_slot, decode_group_slot,
    decode_table_page, directory_digest_term, encode_directory_slot, encode_group_slot,
    encode_table_page, slot_bitmap_word, slot_clear_bits, slot_digest_term,
};
use crate::group_table::TablePageSlot;
use crate::mutants::Mutant;
use crate::state::{AllocState, CommitRecord};
use crate::storage::Storage;

/// How a commit makes itself durable (SPEC.md §3.2 and §3.2.1). Set per pager with
/// [`Pager::set_commit_mode`](crate::Pager::set_commit_mode); it is not stored in the file, so
/// each process chooses, and a file may hold commits of both modes.
///
/// ```
/// use mappedpages::{CommitMode, Pager, SimStorage};
///
/// let mut pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
/// assert_eq!(pager.commit_mode(), CommitMode::Flip);
///
/// pager.set_commit_mode(CommitMode::SingleSync);
/// let before = pager.storage().sync_count();
/// pager.alloc().unwrap();
/// assert_eq!(pager.storage().sync_count() - before, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CommitMode {
    /// Two barriers: the new metadata copy (with everything it refers to), then the superblock
    /// flip that names it. Recovery never has to trust a copy the superblock does not name
    /// unless the named one is damaged.
    #[default]
    Flip,
    /// One barrier over the new metadata copy and everything it refers to; the superblock is not
    /// written. Recovery takes the newest copy that loads completely, checking the protected
    /// contents that commit wrote. Costs: recovery relies on checksums (CRC-32 and the digests)
    /// to reject a partly written commit, and damage to the newest metadata copy rolls back to
    /// the previous commit instead of being reported (SPEC.md §3.2.1).
    SingleSync,
}

/// The generation the next commit of `state` writes. Every caller that stages a change checked
/// first that there is one (`Pager::check_commit_possible`, SPEC.md §3.2): reaching this with the
/// generation exhausted is a bug in the pager, never a property of the file.
pub(crate) fn next_generation(state: &AllocState) -> u64 {
    assert!(
        state.generation() < MAX_GENERATION,
        "commit staged at generation {}, the last one (MAX_GENERATION): the exhaustion check was skipped",
        state.generation()
    );
    state.generation() + 1
}

/// What one commit writes besides what the in-memory state holds, and how it makes it durable.
#[derive(Debug, Default)]
pub(crate) struct CommitPlan {
    /// Byte ranges the caller already wrote (staged protected copies, zeroed new copies, the
    /// last page of a growth) that must be durable before the superblock names the commit.
    pub(crate) data_ranges: Vec<Range<u64>>,
    /// One barrier, no superblock flip.
    pub(crate) mode: CommitMode,
    /// Step 1 materializes every group: the first commit of a new file (SPEC.md §3.1 step 4).
    pub(crate) materialize_all: bool,
    /// Pages the caller filled for this commit (`alloc_with`, SPEC.md §3.6.1): new contents that
    /// step 4's barrier makes durable with the allocation.
    pub(crate) filled_ranges: Vec<Range<u64>>,
    /// Single-sync mode only: the data checks step 3 writes into `Y` (SPEC.md §2.3, format 2),
    /// over pages of `filled_ranges`. Step 1 leaves room for them in the log area.
    pub(crate) data_checks: Vec<DataCheck>,
    /// Data pages changed in place that the caller attached to this commit
    /// (`Pager::attach_to_next_commit`, SPEC.md §3.6.2): step 4's barrier makes them durable.
    pub(crate) attached_ranges: Vec<Range<u64>>,
}

/// Commits `state` (whose bitmap, log and directory already hold the change) as generation
/// `state.generation + 1`: SPEC.md §3.2, steps 1 to 7 (single-sync mode, §3.2.1: 1 to 4 and 7).
///
/// On `Ok` the new state is durable and `state` describes it. On `Err` a barrier failed: what is
/// durable is unknown, and the caller must poison itself (SPEC.md §3.4).
pub(crate) fn commit<S: Storage>(
    storage: &mut S,
    state: &mut AllocState,
    plan: &CommitPlan,
) -> io::Result<()> {
    let staged = stage(storage, state, plan);
    sync(storage, staged.step_4_barrier())?;
    if let Some(step_6) = staged.step_5_flip(storage) {
        sync(storage, &step_6)?;
    }
    staged.step_7_record(storage, state)
}

/// Steps 1 to 3 of a commit: every page of the new state written, nothing durable. The rest is
/// [`Staged`]'s, whose barriers a caller may run with its lock released (`SharedPager`, SPEC.md
/// §3.10); [`commit`] runs them in place.
pub(crate) fn stage<S: Storage>(
    storage: &mut S,
    state: &mut AllocState,
    plan: &CommitPlan,
) -> Staged {
    let mut commit = InFlight::begin(storage, state, plan);
    let folds = commit.step_1_plan_folds();
    commit.step_2_write_folded_slots(&folds);
    commit.step_2b_write_directory_blocks();
    commit.step_2c_write_table_pages();
    let copy = commit.step_3_write_metadata_copy();
    commit.into_staged(copy)
}

/// One barrier of a commit, in place. An empty set of ranges is a barrier a mutant skipped.
fn sync<S: Storage>(storage: &mut S, ranges: &[Range<u64>]) -> io::Result<()> {
    if ranges.is_empty() {
        return Ok(());
    }
    storage.sync_ranges(ranges)
}

/// A commit after step 3: what its barriers cover and what step 7 records. It borrows nothing,
/// so its owner may release the storage between the steps, as long as nobody else writes the
/// pages the commit wrote or stages another commit before step 7 (the group-commit leader holds
/// leadership throughout).
#[derive(Debug)]
pub(crate) struct Staged {
    /// Step 4's ranges: the pages of steps 2 to 3, the data ranges, the filled pages, `Y`
    /// (and page 0 when a mutant flips early). Empty when a mutant skips the barrier.
    step_4: Vec<Range<u64>>,
    /// The superblock naming `Y`, which step 5 writes.
    superblock: Superblock,
    superblock_range: Range<u64>,
    mode: CommitMode,
    /// The plan's data ranges (for the `PromoteBeforeStagedDurable` mutant, after step 6).
    data_ranges: Vec<Range<u64>>,
    /// What memory takes at step 7.
    record: CommitRecord,
    /// `g + 1`.
    generation: u64,
}

impl Staged {
    /// Step 4: one barrier over the pages of steps 2 to 3 and the plan's data ranges. Until it
    /// returns, the superblock still names the old copy. In single-sync mode this is the only
    /// barrier: once it returns, `Y` loads completely and recovery takes it (§3.2.1); until
    /// then, any part of it may be missing and recovery falls back to `X`. The ranges for the
    /// caller's barrier (empty: none).
    pub(crate) fn step_4_barrier(&self) -> &[Range<u64>] {
        if hooks::step_4_skips_barrier() {
            return &[];
        }
        &self.step_4
    }

    /// Step 5, after step 4's barrier returned: the superblock (one 512-byte sector) names
    /// `Y`, generation `g + 1` and `Y`'s checksum field. Returns step 6's barrier, one over page
    /// 0 (empty: a mutant skips it); `None` in single-sync mode, which has neither step.
    pub(crate) fn step_5_flip<S: Storage>(&self, storage: &mut S) -> Option<Vec<Range<u64>>> {
        if self.mode != CommitMode::Flip {
            return None;
        }
        write_superblock(storage, &self.superblock);
        if hooks::step_6_skips_barrier() {
            return Some(Vec::new());
        }
        Some(vec![self.superblock_range.clone()])
    }

    /// Step 7, after the last barrier returned: only now does memory say the new state is
    /// committed.
    pub(crate) fn step_7_record<S: Storage>(
        self,
        storage: &mut S,
        state: &mut AllocState,
    ) -> io::Result<()> {
        hooks::after_step_6_sync_data_late(storage, &self.data_ranges)?;
        assert_eq!(
            self.generation,
            state.generation() + 1,
            "step 7 records generation {} over generation {}: another commit ran in between",
            self.generation,
            state.generation()
        );
        state.committed(self.record);
        Ok(())
    }
}

/// Settles the last commit (SPEC.md §3.6.1): writes the superblock naming the active copy, its
/// generation and checksum field, and makes it durable (one barrier over page 0). Afterwards
/// recovery takes that copy by row 4 of §4.2, without its data checks, so the pages they cover
/// may change. Nothing to do (no write, no barrier) when no data check is unsettled.
///
/// On `Err` the barrier failed: the caller must poison itself (SPEC.md §3.4).
pub(crate) fn settle<S: Storage>(storage: &mut S, state: &mut AllocState) -> io::Result<()> {
    if state.unsettled().is_empty() {
        return Ok(());
    }
    let page = page_range(state, state.active_meta().page());
    let checksum =
        MetaPage::checksum_field(&storage.bytes()[page.start as usize..page.end as usize])
            .expect("the active metadata copy lies inside the map");
    let superblock = Superblock {
        version: state.format_version(),
        page_size: state.geometry.page_size(),
        active_meta: state.active_meta(),
        active_generation: state.generation(),
        active_meta_checksum: checksum,
    };
    write_superblock(storage, &superblock);
    storage.sync_ranges(&[page_range(state, 0)])?;
    state.settled();
    Ok(())
}

/// A commit between its steps: the pages written so far and what step 7 will record.
struct InFlight<'a, S: Storage> {
    storage: &'a mut S,
    state: &'a mut AllocState,
    plan: &'a CommitPlan,
    /// `g + 1`, the generation every page of this commit carries.
    generation: u64,
    /// The pages steps 2 and 2b wrote, in the order written (step 4's barrier covers them).
    written: Vec<Range<u64>>,
    /// What memory takes at step 7; steps 2 to 3 fill it in.
    record: CommitRecord,
}

/// The metadata copy step 3 wrote, and the superblock that names it.
struct WrittenCopy {
    range: Range<u64>,
    superblock: Superblock,
}

impl<'a, S: Storage> InFlight<'a, S> {
    /// Checks the preconditions of a commit of `state` and starts one.
    fn begin(storage: &'a mut S, state: &'a mut AllocState, plan: &'a CommitPlan) -> Self {
        let generation = next_generation(state);
        let page_size = state.geometry.page_size();
        let len_bytes = storage.len_bytes();
        assert!(
            len_bytes >= state.page_count * page_size,
            "storage of {len_bytes} bytes is shorter than {} pages",
            state.page_count
        );
        assert!(
            plan.data_checks.is_empty()
                || (plan.mode == CommitMode::SingleSync && state.format_version() >= 2),
            "data checks in a {:?} commit of a format-{} file",
            plan.mode,
            state.format_version()
        );
        assert!(
            plan.data_checks.len() <= state.geometry.log_capacity() / 2,
            "{} data checks leave too little of the log area",
            plan.data_checks.len()
        );
        for check in &plan.data_checks {
            let bytes = check.first_page * page_size..check.end_page() * page_size;
            assert!(
                plan.filled_ranges
                    .iter()
                    .any(|r| r.start <= bytes.start && bytes.end <= r.end),
                "data check {check:?} over pages the barrier does not cover"
            );
        }
        for range in plan
            .data_ranges
            .iter()
            .chain(&plan.filled_ranges)
            .chain(&plan.attached_ranges)
        {
            assert!(
                range.start < range.end
                    && range.end <= len_bytes
                    && range.start >= state.geometry.first_data_page() * page_size,
                "data range {range:?} is not inside the data pages of a file of {len_bytes} bytes"
            );
        }
        InFlight {
            record: state.begin_commit(generation),
            written: Vec::new(),
            storage,
            state,
            plan,
            generation,
        }
    }

    /// Step 1: which groups this commit writes as slot pages ([`AllocState::plan_folds`]); their
    /// log entries leave the log, and what stays fits in the metadata copy.
    fn step_1_plan_folds(&mut self) -> Vec<u64> {
        let reserved = self.plan.data_checks.len();
        let folds = self.state.plan_folds(self.plan.materialize_all, reserved);
        assert!(
            folds.windows(2).all(|w| w[0] < w[1]),
            "folds must be sorted and distinct"
        );
        assert!(
            self.state.log.len() + reserved <= self.state.geometry.log_capacity(),
            "the log and the data checks do not fit in the metadata copy after step 1"
        );
        folds
    }

    /// Step 2: every folded group goes to its inactive slot (slot 0 for a group materialized
    /// now), with its whole current bitmap. Current slots are never written.
    fn step_2_write_folded_slots(&mut self, folds: &[u64]) {
        for &group in folds {
            let (slot, old_term) = match self.state.group_slot(group) {
                Some((current, old_term)) => {
                    let slot = hooks::step_2_fold_slot(current);
                    assert!(
                        slot != current || hooks::crosses(Mutant::FoldIntoCurrentSlot),
                        "step 2 folds group {group} into its current slot {current}"
                    );
                    (slot, old_term)
                }
                None => {
                    assert_eq!(
                        group, self.record.materialized_groups,
                        "groups materialize in order"
                    );
                    self.record.materialized_groups += 1;
                    (0, 0)
                }
            };
            let (term, entry) = self.write_group_slot(group, slot);
            self.record.slot_digest ^= old_term ^ term;
            self.record.folded_slots.push((group, slot, term));
            if self.state.geometry.has_group_table() {
                self.record.table_updates.push((group, entry));
            }
        }
    }

    /// Encodes `group`'s bitmap into its `slot` page, checks (debug builds) that it decodes back
    /// to what was encoded, and returns the page's digest term and the table entry that pins it
    /// (format 3).
    fn write_group_slot(&mut self, group: u64, slot: u8) -> (u64, TableEntry) {
        let geometry = self.state.geometry;
        let range = page_range(self.state, geometry.slot_page(group, slot));
        let header = GroupSlotHeader {
            generation: self.generation,
            group,
        };
        let words = self.state.group_words(group);
        let page = page_mut(self.storage, &range);
        let checksum = encode_group_slot(geometry, header, &words, page);
        if cfg!(debug_assertions) {
            debug_check_group_slot(page, self.state, header, &words);
        }
        self.written.push(range);
        let entry = TableEntry {
            generation: self.generation,
            checksum,
            slot,
            free_pages: u32::try_from(slot_clear_bits(geometry, words.iter().copied()))
                .expect("a group's pages fit 31 bits"),
        };
        (slot_digest_term(group, self.generation, checksum), entry)
    }

    /// Step 2c (format 3): every table page holding an entry of a folded group goes to its
    /// inactive slot (slot 0 for a new one), with all its entries; the table digest follows.
    /// Current table slots are never written.
    fn step_2c_write_table_pages(&mut self) {
        if !self.state.geometry.has_group_table() {
            return;
        }
        let geometry = self.state.geometry;
        let writes = self.state.table.plan(geometry, &self.record.table_updates);
        for mut write in writes {
            let current = self.state.table.page_slot(write.table_page);
            write.slot = hooks::step_2c_table_slot(current, write.slot);
            assert!(
                current != Some(write.slot) || hooks::crosses(Mutant::TableInPlace),
                "step 2c writes table page {} into its current slot",
                write.table_page
            );
            let range = page_range(
                self.state,
                geometry.table_slot_page(write.table_page, write.slot),
            );
            let header = TablePageHeader {
                generation: self.generation,
                index: write.table_page,
            };
            let page = page_mut(self.storage, &range);
            let checksum = encode_table_page(geometry, header, &write.entries, page);
            if cfg!(debug_assertions) {
                debug_check_table_page(page, geometry, header, &write.entries);
            }
            self.written.push(range);
            let slot = TablePageSlot {
                slot: write.slot,
                generation: self.generation,
                checksum,
            };
            self.record.table_written.push((write.table_page, slot));
        }
        self.record.table_digest = self.state.table.digest_after(&self.record.table_written);
    }

    /// Step 2b: every changed directory block goes to its inactive slot, in both mirrors. A new
    /// block goes to slot 0 and also invalidates its slot 1 in both mirrors, so nothing a page
    /// held before can pass for a slot of this block. Current slots are never written.
    fn step_2b_write_directory_blocks(&mut self) {
        for block_index in self.state.directory.dirty_blocks() {
            let block = &self.state.directory.blocks[block_index as usize];
            let (current, old_term) = (block.current_slot, block.term);
            let slot = hooks::step_2b_block_slot(current, block.next_slot());
            assert!(
                current != Some(slot) || hooks::crosses(Mutant::DirectoryInPlace),
                "step 2b writes directory block {block_index} into its current slot {slot}"
            );
            let (pages, scrubbed) = (block.slot_pages(slot), block.slot_pages(1));
            let content = self
                .state
                .directory
                .slot_for_commit(block_index, self.generation);
            let term = self.write_directory_slot(&content, pages);
            if current.is_none() {
                assert_eq!(slot, 0, "a new directory block is written in slot 0");
                self.scrub(scrubbed);
            }
            self.record.directory_digest ^= old_term ^ term;
            self.record.directory_blocks.push((block_index, slot, term));
        }
    }

    /// Encodes `content` into `pages` (one per mirror), checks (debug builds) that each decodes
    /// back to it, and returns the slot's digest term.
    fn write_directory_slot(&mut self, content: &DirectorySlot, pages: [u64; 2]) -> u64 {
        let geometry = self.state.geometry;
        let mut checksums = [0; 2];
        for (checksum, page) in checksums.iter_mut().zip(pages) {
            let range = page_range(self.state, page);
            let bytes = page_mut(self.storage, &range);
            *checksum = encode_directory_slot(geometry, content, bytes);
            if cfg!(debug_assertions) {
                debug_check_directory_slot(bytes, self.state, content);
            }
            self.written.push(range);
        }
        assert_eq!(
            checksums[0], checksums[1],
            "both mirrors hold the same slot"
        );
        directory_digest_term(content.block, self.generation, checksums[1])
    }

    /// Zeroes the first [`SCRUB_BYTES`] of each of `pages`: no magic, so no slot.
    fn scrub(&mut self, pages: [u64; 2]) {
        for page in pages {
            let range = page_range(self.state, page);
            page_mut(self.storage, &range)[..SCRUB_BYTES].fill(0);
            self.written.push(range);
        }
    }

    /// Step 3: the inactive metadata copy `Y`, with generation `g + 1`, the page count, the
    /// materialized groups, the slot digest, the directory root and the log. The active copy is
    /// never written.
    fn step_3_write_metadata_copy(&mut self) -> WrittenCopy {
        let state = &*self.state;
        let target = hooks::step_3_target(state.active_meta(), state.generation());
        assert!(
            target != state.active_meta() || hooks::crosses(Mutant::WriteActiveCopyInPlace),
            "step 3 writes the active metadata copy {target:?}"
        );
        let record = &mut self.record;
        let mut meta = state.meta_page(
            self.generation,
            record.slot_digest,
            record.materialized_groups,
            state.directory.root(record.directory_digest),
            self.plan.mode == CommitMode::SingleSync,
        );
        meta.data_checks = self.plan.data_checks.clone();
        meta.table_digest = record.table_digest;
        record.data_checks = self.plan.data_checks.clone();
        let range = page_range(state, target.page());
        let page = page_mut(self.storage, &range);
        let checksum = meta.encode(state.geometry, page);
        if cfg!(debug_assertions) {
            debug_check_metadata_copy(page, state, &meta);
        }
        record.active_meta = target;
        let superblock = Superblock {
            version: state.format_version(),
            page_size: state.geometry.page_size(),
            active_meta: target,
            active_generation: self.generation,
            active_meta_checksum: checksum,
        };
        WrittenCopy { range, superblock }
    }

    /// The commit after step 3, owning what the remaining steps need: step 4's ranges are the
    /// pages of steps 2 to 3, the plan's data ranges and filled pages, and `Y`.
    fn into_staged(mut self, copy: WrittenCopy) -> Staged {
        let mut ranges = std::mem::take(&mut self.written);
        ranges.extend_from_slice(hooks::step_4_data_ranges(&self.plan.data_ranges));
        ranges.extend_from_slice(hooks::step_4_filled_ranges(&self.plan.filled_ranges));
        ranges.extend_from_slice(hooks::step_4_attached_ranges(&self.plan.attached_ranges));
        ranges.push(copy.range.clone());
        let superblock_range = page_range(self.state, 0);
        if hooks::step_4_flips_early(self.plan.mode) {
            write_superblock(self.storage, &copy.superblock);
            ranges.push(superblock_range.clone());
        }
        Staged {
            step_4: ranges,
            superblock: copy.superblock,
            superblock_range,
            mode: self.plan.mode,
            data_ranges: self.plan.data_ranges.clone(),
            record: self.record,
            generation: self.generation,
        }
    }
}

/// Writes `superblock`'s record at the start of page 0 and checks (debug builds) that it decodes
/// back to it. Not durable until a barrier covers page 0.
fn write_superblock<S: Storage>(storage: &mut S, superblock: &Superblock) {
    let record = superblock.encode();
    let bytes = &mut storage.bytes_mut()[..record.len()];
    bytes.copy_from_slice(&record);
    if cfg!(debug_assertions) {
        let decoded = Superblock::decode(bytes);
        assert!(
            decoded.as_ref().is_ok_and(|decoded| decoded == superblock),
            "the superblock decodes to {decoded:?}, not to the encoded {superblock:?}"
        );
    }
}

fn page_range(state: &AllocState, page: u64) -> Range<u64> {
    let start = state.geometry.offset(page);
    start..start + state.geometry.page_size()
}

fn page_mut<'s, S: Storage>(storage: &'s mut S, range: &Range<u64>) -> &'s mut [u8] {
    &mut storage.bytes_mut()[range.start as usize..range.end as usize]
}

/// Paired encode/decode check of step 2: the slot page decodes to the header and the words
/// encoded.
fn debug_check_table_page(
    page: &[u8],
    geometry: Geometry,
    header: TablePageHeader,
    entries: &[TableEntry],
) {
    let decoded = decode_table_page(page, geometry, header.index);
    assert!(
        decoded
            .as_ref()
            .is_ok_and(|(h, e)| *h == header && e.as_slice() == entries),
        "table page {} does not decode to what was encoded: {decoded:?}",
        header.index
    );
}

fn debug_check_group_slot(page: &[u8], state: &AllocState, header: GroupSlotHeader, words: &[u64]) {
    match decode_group_slot(page, state.geometry, header.group) {
        Ok((decoded, bitmap)) => {
            assert_eq!(decoded, header, "group slot header round trip");
            for (index, &word) in words.iter().enumerate() {
                assert_eq!(
                    slot_bitmap_word(bitmap, index),
                    word,
                    "group {} bitmap word {index} round trip",
                    header.group
                );
            }
        }
        Err(error) => panic!(
            "the slot page of group {} does not decode: {error:?}",
            header.group
        ),
    }
}

/// Paired encode/decode check of step 2b: the directory page decodes to the slot encoded.
fn debug_check_directory_slot(page: &[u8], state: &AllocState, content: &DirectorySlot) {
    match decode_directory_slot(page, state.geometry, content.block, state.page_count) {
        Ok(decoded) => assert_eq!(&decoded, content, "directory slot round trip"),
        Err(error) => panic!(
            "the slot page of directory block {} does not decode: {error:?}",
            content.block
        ),
    }
}

/// Paired encode/decode check of step 3: the metadata copy decodes to the page encoded.
fn debug_check_metadata_copy(page: &[u8], state: &AllocState, meta: &MetaPage) {
    match MetaPage::decode(page, state.geometry) {
        Ok(decoded) => assert_eq!(&decoded, meta, "metadata copy round trip"),
        Err(error) => panic!("the metadata copy does not decode: {error:?}"),
    }
}

/// The deliberately broken variants of the steps ([`crate::mutants`]), one function per step,
/// named for it: each returns what the correct step does unless its mutant is active (without
/// the `mutants` feature, always).
mod hooks {
    use std::io;
    use std::ops::Range;

    use super::CommitMode;
    use crate::format::MetaSlot;
    use crate::mutants::{Mutant, active};
    use crate::storage::Storage;

    /// True when `mutant` is active: the one case in which a boundary assertion lets a step
    /// cross the boundary (the mutant crosses it on purpose, for crashsim to catch).
    pub(super) fn crosses(mutant: Mutant) -> bool {
        active(mutant)
    }

    /// Step 2: the slot a materialized group whose current slot is `current` folds into: the
    /// other one (`FoldIntoCurrentSlot`: the current one, in place).
    pub(super) fn step_2_fold_slot(current: u8) -> u8 {
        if active(Mutant::FoldIntoCurrentSlot) {
            return current;
        }
        1 - current
    }

    /// Step 2c: the slot a changed table page goes to: `next`, its inactive one (`TableInPlace`:
    /// the `current` one, in place, when it has one).
    pub(super) fn step_2c_table_slot(current: Option<u8>, next: u8) -> u8 {
        match current {
            Some(current) if active(Mutant::TableInPlace) => current,
            _ => next,
        }
    }

    /// Step 2b: the slot a changed directory block goes to: `next`, its inactive one
    /// (`DirectoryInPlace`: the `current` one, in place, when it has one).
    pub(super) fn step_2b_block_slot(current: Option<u8>, next: u8) -> u8 {
        match current {
            Some(current) if active(Mutant::DirectoryInPlace) => current,
            _ => next,
        }
    }

    /// Step 3: the copy `Y` written: the other one than the `active` copy
    /// (`WriteActiveCopyInPlace`: the active one, once the file has a commit).
    pub(super) fn step_3_target(active_meta: MetaSlot, generation: u64) -> MetaSlot {
        if active(Mutant::WriteActiveCopyInPlace) && generation > 0 {
            return active_meta;
        }
        active_meta.other()
    }

    /// Step 4: the data ranges its barrier covers: all of them (`PromoteBeforeStagedDurable`:
    /// none; [`after_step_6_sync_data_late`] syncs them after the flip).
    pub(super) fn step_4_data_ranges(data_ranges: &[Range<u64>]) -> &[Range<u64>] {
        if active(Mutant::PromoteBeforeStagedDurable) {
            return &[];
        }
        data_ranges
    }

    /// Step 4: the filled pages its barrier covers: all of them (`DataLeftOutOfBarrier`: none,
    /// and no barrier of the commit covers them).
    pub(super) fn step_4_filled_ranges(filled_ranges: &[Range<u64>]) -> &[Range<u64>] {
        if active(Mutant::DataLeftOutOfBarrier) {
            return &[];
        }
        filled_ranges
    }

    /// Step 4: the attached pages its barrier covers: all of them
    /// (`AttachedLeftOutOfBarrier`: none, and no barrier of the commit covers them).
    pub(super) fn step_4_attached_ranges(attached_ranges: &[Range<u64>]) -> &[Range<u64>] {
        if active(Mutant::AttachedLeftOutOfBarrier) {
            return &[];
        }
        attached_ranges
    }

    /// Step 4: false: the superblock is written at step 5, after the barrier
    /// (`FlipBeforeMetadataDurable`, and `SingleSyncFlipInBarrier` in single-sync mode: before
    /// it, and the barrier covers it).
    pub(super) fn step_4_flips_early(mode: CommitMode) -> bool {
        active(Mutant::FlipBeforeMetadataDurable)
            || (mode == CommitMode::SingleSync && active(Mutant::SingleSyncFlipInBarrier))
    }

    /// Step 4: false (`SkipMetadataBarrier`: true, the barrier is left out).
    pub(super) fn step_4_skips_barrier() -> bool {
        active(Mutant::SkipMetadataBarrier)
    }

    /// Step 6: false (`SkipSuperblockBarrier`: true, the barrier is left out).
    pub(super) fn step_6_skips_barrier() -> bool {
        active(Mutant::SkipSuperblockBarrier)
    }

    /// After step 6: nothing (`PromoteBeforeStagedDurable`: the data ranges step 4 left out
    /// become durable only now, after the flip).
    pub(super) fn after_step_6_sync_data_late<S: Storage>(
        storage: &mut S,
        data_ranges: &[Range<u64>],
    ) -> io::Result<()> {
        if active(Mutant::PromoteBeforeStagedDurable) && !data_ranges.is_empty() {
            return storage.sync_ranges(data_ranges);
        }
        Ok(())
    }
}
