//! The decision table of SPEC.md §4.2, as a pure function of the decoded superblock and copies
//! and of what loading a copy gives (a [`Loader`]): one function per row, tried top to bottom.

use super::RecoveryDecision;
use super::rejection::{LoadRejection, Rejection, Rejections};
use crate::error::MappedPageError;
use crate::format::{DecodeError, MetaPage, MetaSlot, Reason, Superblock};
use crate::mutants::{Mutant, active};

/// The decoded candidates: the superblock and the two metadata copies.
#[derive(Debug)]
pub(crate) struct Candidates {
    pub(crate) superblock: Result<Superblock, DecodeError>,
    /// Copy A, then copy B.
    pub(crate) metas: [Result<MetaPage, DecodeError>; 2],
    /// The checksum field of each copy's page (`None` when the page lies past the file).
    pub(crate) checksums: [Option<u32>; 2],
    /// The page size the file is opened with.
    pub(crate) page_size: u64,
    /// The file's geometry: its page size and format (a group table from format 3 on).
    pub(crate) geometry: crate::format::Geometry,
}

const BOTH: [MetaSlot; 2] = [MetaSlot::A, MetaSlot::B];

fn index(slot: MetaSlot) -> usize {
    match slot {
        MetaSlot::A => 0,
        MetaSlot::B => 1,
    }
}

impl Candidates {
    pub(crate) fn meta(&self, slot: MetaSlot) -> &Result<MetaPage, DecodeError> {
        &self.metas[index(slot)]
    }

    pub(crate) fn checksum(&self, slot: MetaSlot) -> Option<u32> {
        self.checksums[index(slot)]
    }

    /// The well-formed copies, newest first.
    fn well_formed_newest_first(&self) -> Vec<(MetaSlot, u64)> {
        let mut copies: Vec<(MetaSlot, u64)> = BOTH
            .into_iter()
            .filter_map(|slot| self.meta(slot).as_ref().ok().map(|m| (slot, m.generation)))
            .collect();
        copies.sort_by_key(|copy| std::cmp::Reverse(copy.1));
        copies
    }
}

/// What a row of the table asks of a load beyond the checks every load makes (SPEC.md §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoadChecks {
    /// Step 9, the copy's data checks: row 3 only.
    pub(crate) data: bool,
    /// Step 3 (format 3), the pinned slots of the groups the copy's own commit folded: every row
    /// but 4, where the superblock names the copy, so its commit's barrier completed before the
    /// superblock was written (a slot of it damaged since is found on first use, §4.9).
    pub(crate) own_folds: bool,
}

impl LoadChecks {
    /// The checks of the row deciding `decision`.
    pub(crate) fn for_decision(decision: RecoveryDecision) -> LoadChecks {
        LoadChecks {
            data: decision == RecoveryDecision::NewerSingleSyncCommit,
            own_folds: decision != RecoveryDecision::Superblock,
        }
    }

    /// Every check (a copy loaded outside the table: a rollback's plan).
    pub(crate) const ALL: LoadChecks = LoadChecks {
        data: false,
        own_folds: true,
    };
}

/// What loading a well-formed copy gives (SPEC.md §4.1): the recovered state, or why not.
pub(crate) trait Loader {
    type State;
    /// Loads `meta`, found in copy `slot`, with the row's `checks`.
    fn load(
        &mut self,
        slot: MetaSlot,
        meta: &MetaPage,
        checks: LoadChecks,
    ) -> Result<Self::State, LoadRejection>;
    /// A page size, other than the expected one, at which a metadata copy is well-formed.
    fn other_page_size(&self) -> Option<u64>;
}

/// The table's choice: the copy, the state it loaded to, and the row that decided.
#[derive(Debug)]
pub(crate) struct Chosen<T> {
    pub(crate) slot: MetaSlot,
    pub(crate) state: T,
    pub(crate) decision: RecoveryDecision,
}

/// Rows 1–2 (before the copies are read): an unsupported version or another page size in a
/// valid superblock.
pub(crate) fn rows_1_2_superblock_format(
    superblock: &Result<Superblock, DecodeError>,
    page_size: u64,
) -> Result<(), MappedPageError> {
    match superblock {
        Err(DecodeError {
            reason: Reason::UnsupportedVersion(found),
            ..
        }) => Err(MappedPageError::UnsupportedVersion { found: *found }),
        Ok(sb) if sb.page_size != page_size => Err(MappedPageError::PageSizeMismatch {
            found: sb.page_size,
            expected: page_size,
        }),
        _ => Ok(()),
    }
}

/// Before the table: a well-formed copy that records another page size.
pub(crate) fn copies_page_size(
    metas: &[Result<MetaPage, DecodeError>; 2],
    page_size: u64,
) -> Result<(), MappedPageError> {
    for meta in metas {
        if let Err(DecodeError {
            reason: Reason::PageSize(found),
            ..
        }) = meta
        {
            return Err(MappedPageError::PageSizeMismatch {
                found: *found,
                expected: page_size,
            });
        }
    }
    Ok(())
}

/// Rows 3–10: which copy the file holds.
pub(crate) fn decide<L: Loader>(
    candidates: &Candidates,
    loader: &mut L,
) -> Result<Chosen<L::State>, MappedPageError> {
    let mut table = Table {
        candidates,
        loader,
        rejected: Rejections::default(),
    };
    let chosen = match &candidates.superblock {
        Ok(sb) => table
            .row3_newer_single_sync(sb)
            .or_else(|| table.row4_named_copy(sb))
            .or_else(|| table.row5_next_generation(sb))
            .ok_or_else(|| table.row6_rollback_refused()),
        Err(error) => table.rows7_to_10_corrupt_superblock(error),
    }?;
    postconditions(candidates, &chosen);
    Ok(chosen)
}

/// What the table checks of its own choice, whatever the loader does.
fn postconditions<T>(candidates: &Candidates, chosen: &Chosen<T>) {
    let Ok(meta) = candidates.meta(chosen.slot) else {
        panic!(
            "recovery chose copy {}, which is not well-formed",
            chosen.slot
        );
    };
    let Ok(sb) = &candidates.superblock else {
        assert_eq!(
            chosen.decision,
            RecoveryDecision::NewestAfterCorruptSuperblock
        );
        return;
    };
    match chosen.decision {
        RecoveryDecision::Superblock => {
            assert_eq!(
                chosen.slot, sb.active_meta,
                "the superblock's row took another copy"
            );
            assert_eq!(
                meta.generation, sb.active_generation,
                "the superblock's generation"
            );
        }
        RecoveryDecision::NextGenerationAfterCorruptSelected => {
            assert_ne!(
                chosen.slot, sb.active_meta,
                "the successor row took the named copy"
            );
            assert!(
                active(Mutant::FallBackBlindly)
                    || sb.active_generation.checked_add(1) == Some(meta.generation),
                "the successor row took generation {} after the superblock's {}",
                meta.generation,
                sb.active_generation
            );
        }
        RecoveryDecision::NewerSingleSyncCommit => assert!(
            meta.single_sync && meta.generation > sb.active_generation,
            "the single-sync row took generation {} (flag {}) at or below the superblock's {}",
            meta.generation,
            meta.single_sync,
            sb.active_generation
        ),
        RecoveryDecision::NewestAfterCorruptSuperblock => {
            panic!("the corrupt-superblock row decided with a valid superblock")
        }
    }
}

struct Table<'a, L> {
    candidates: &'a Candidates,
    loader: &'a mut L,
    rejected: Rejections,
}

impl<L: Loader> Table<'_, L> {
    /// Loads copy `slot` for the row deciding `decision`, recording why not. Only the
    /// single-sync row checks data (§4.1 step 9): every other row takes a copy whose filled
    /// pages the caller may have changed since (a superblock names it, §3.6.1).
    fn try_load(&mut self, slot: MetaSlot, decision: RecoveryDecision) -> Option<L::State> {
        let checks = LoadChecks::for_decision(decision);
        let rejection = match self.candidates.meta(slot) {
            Ok(meta) => match self.loader.load(slot, meta, checks) {
                Ok(state) => return Some(state),
                Err(why) => Rejection::DoesNotLoad {
                    slot,
                    generation: meta.generation,
                    why,
                },
            },
            Err(error) => Rejection::Malformed {
                slot,
                error: *error,
            },
        };
        self.rejected.0.push(rejection);
        None
    }

    /// Takes the first of `slots` that loads.
    fn first_loading(
        &mut self,
        slots: impl IntoIterator<Item = MetaSlot>,
        decision: RecoveryDecision,
    ) -> Option<Chosen<L::State>> {
        slots.into_iter().find_map(|slot| {
            self.try_load(slot, decision).map(|state| Chosen {
                slot,
                state,
                decision,
            })
        })
    }

    /// Row 3: of the copies with the single-sync flag and a generation above the superblock's
    /// (two with one generation: none), the newest that loads. Single-sync commits never flip
    /// the superblock (§3.2.1).
    fn row3_newer_single_sync(&mut self, sb: &Superblock) -> Option<Chosen<L::State>> {
        let newer: Vec<(MetaSlot, u64)> = self
            .candidates
            .well_formed_newest_first()
            .into_iter()
            .filter(|&(slot, generation)| {
                generation > sb.active_generation
                    && self
                        .candidates
                        .meta(slot)
                        .as_ref()
                        .is_ok_and(|m| m.single_sync)
            })
            .collect();
        if let [(_, first), (_, second)] = newer[..]
            && first == second
        {
            return None;
        }
        let slots = newer.into_iter().map(|(slot, _)| slot);
        self.first_loading(slots, RecoveryDecision::NewerSingleSyncCommit)
    }

    /// Row 4: the copy the superblock names, if it matches (generation and checksum) and loads.
    fn row4_named_copy(&mut self, sb: &Superblock) -> Option<Chosen<L::State>> {
        let named = sb.active_meta;
        match self.candidates.meta(named) {
            Ok(meta)
                if meta.generation == sb.active_generation
                    && self.candidates.checksum(named) == Some(sb.active_meta_checksum) =>
            {
                self.first_loading([named], RecoveryDecision::Superblock)
            }
            Ok(_) => {
                self.rejected.0.push(Rejection::NotTheNamedCopy {
                    slot: named,
                    superblock_generation: sb.active_generation,
                });
                None
            }
            Err(_) => self.first_loading([named], RecoveryDecision::Superblock),
        }
    }

    /// Row 5: the other copy, if it holds the superblock's generation + 1 (the commit in flight
    /// had completed its first barrier) and loads. A superblock at `MAX_GENERATION` has no
    /// successor (generations never wrap, §3.2).
    fn row5_next_generation(&mut self, sb: &Superblock) -> Option<Chosen<L::State>> {
        let other = sb.active_meta.other();
        let decision = RecoveryDecision::NextGenerationAfterCorruptSelected;
        match self.candidates.meta(other) {
            Ok(meta)
                if sb.active_generation.checked_add(1) == Some(meta.generation)
                    || active(Mutant::FallBackBlindly) =>
            {
                self.first_loading([other], decision)
            }
            Ok(meta) => {
                self.rejected.0.push(Rejection::NotTheSuccessor {
                    slot: other,
                    generation: meta.generation,
                    superblock_generation: sb.active_generation,
                });
                None
            }
            Err(_) => self.first_loading([other], decision),
        }
    }

    /// Row 6: nothing else may be taken: using the other copy would roll back acknowledged
    /// commits.
    fn row6_rollback_refused(&mut self) -> MappedPageError {
        MappedPageError::CorruptMetadata {
            detail: self.rejected.to_string(),
        }
    }

    /// Rows 7–10, the superblock is invalid: the loading copy with the highest generation.
    fn rows7_to_10_corrupt_superblock(
        &mut self,
        sb_error: &DecodeError,
    ) -> Result<Chosen<L::State>, MappedPageError> {
        let copies = self.candidates.well_formed_newest_first();
        if copies.is_empty() {
            return Err(self.rows8_10_no_well_formed_copy(sb_error));
        }
        if let [(_, first), (_, second)] = copies[..]
            && first == second
        {
            return Err(MappedPageError::CorruptMetadata {
                detail: format!("{sb_error}, and both copies claim generation {first}"),
            });
        }
        let slots = copies.into_iter().map(|(slot, _)| slot);
        if let Some(chosen) =
            self.first_loading(slots, RecoveryDecision::NewestAfterCorruptSuperblock)
        {
            return Ok(chosen);
        }
        if self.row9_never_finished_create(sb_error) {
            return Err(MappedPageError::NotAMappedPagesFile);
        }
        Err(MappedPageError::CorruptMetadata {
            detail: format!("{sb_error}; {}", self.rejected),
        })
    }

    /// Row 8 (magic absent everywhere: not a file of ours, or one of another page size), else
    /// row 10 (`CorruptSuperblock`).
    fn rows8_10_no_well_formed_copy(&self, sb_error: &DecodeError) -> MappedPageError {
        let no_magic = |meta: &Result<MetaPage, DecodeError>| {
            meta.as_ref()
                .is_err_and(|error| error.reason == Reason::BadMagic)
        };
        if sb_error.reason == Reason::BadMagic && self.candidates.metas.iter().all(no_magic) {
            return match self.loader.other_page_size() {
                Some(found) => MappedPageError::PageSizeMismatch {
                    found,
                    expected: self.candidates.page_size,
                },
                None => MappedPageError::NotAMappedPagesFile,
            };
        }
        let copies: Vec<String> = BOTH
            .into_iter()
            .map(|slot| match self.candidates.meta(slot) {
                Err(error) => format!("copy {slot}: {error}"),
                Ok(_) => String::new(),
            })
            .collect();
        MappedPageError::CorruptSuperblock {
            detail: format!("{sb_error}; {}", copies.join("; ")),
        }
    }

    /// Row 9: the superblock was never written and every well-formed copy has generation 1: a
    /// create that did not finish. Nothing was ever committed.
    fn row9_never_finished_create(&self, sb_error: &DecodeError) -> bool {
        sb_error.reason == Reason::BadMagic
            && self
                .candidates
                .metas
                .iter()
                .all(|m| m.as_ref().map_or(true, |m| m.generation == 1))
    }
}

/// One case per row of SPEC.md §4.2 (and per sub-case a row names), against a loader that
/// loads the copies a case says load: the table alone, no image.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{DirectoryRoot, PageKind};

    const P: u64 = 1024;

    fn copy(generation: u64, single_sync: bool) -> Result<MetaPage, DecodeError> {
        Ok(MetaPage {
            generation,
            page_count: 6,
            materialized_groups: 1,
            slot_digest: 0,
            log: Vec::new(),
            directory: DirectoryRoot::default(),
            single_sync,
            data_checks: Vec::new(),
            table_digest: 0,
        })
    }

    fn flip(generation: u64) -> Result<MetaPage, DecodeError> {
        copy(generation, false)
    }

    fn single(generation: u64) -> Result<MetaPage, DecodeError> {
        copy(generation, true)
    }

    /// A valid superblock naming `slot` at `generation` with checksum field `100 + generation`;
    /// [`candidates`] gives each copy that checksum field.
    fn names(slot: MetaSlot, generation: u64) -> Result<Superblock, DecodeError> {
        Ok(Superblock {
            version: crate::format::FORMAT_VERSION,
            page_size: P,
            active_meta: slot,
            active_generation: generation,
            active_meta_checksum: (generation as u32).wrapping_add(100),
        })
    }

    fn candidates(
        superblock: Result<Superblock, DecodeError>,
        a: Result<MetaPage, DecodeError>,
        b: Result<MetaPage, DecodeError>,
    ) -> Candidates {
        let field = |m: &Result<MetaPage, DecodeError>| {
            Some(
                m.as_ref()
                    .map_or(0, |m| (m.generation as u32).wrapping_add(100)),
            )
        };
        Candidates {
            superblock,
            checksums: [field(&a), field(&b)],
            metas: [a, b],
            page_size: P,
            geometry: crate::format::Geometry::new(P as usize),
        }
    }

    struct FakeLoader {
        loads: [bool; 2],
        /// The copy loads only when its data checks are not asked for (§4.1 step 9).
        data_missing: [bool; 2],
        other_page_size: Option<u64>,
    }

    impl Loader for FakeLoader {
        type State = ();

        fn load(
            &mut self,
            slot: MetaSlot,
            _: &MetaPage,
            checks: LoadChecks,
        ) -> Result<(), LoadRejection> {
            if checks.data && self.data_missing[index(slot)] {
                return Err(LoadRejection::DataMissing {
                    first_page: 9,
                    page_count: 1,
                });
            }
            if self.loads[index(slot)] {
                Ok(())
            } else {
                Err(LoadRejection::SlotDigest)
            }
        }

        fn other_page_size(&self) -> Option<u64> {
            self.other_page_size
        }
    }

    enum Expect {
        Takes(MetaSlot, RecoveryDecision),
        Fails(fn(&MappedPageError) -> bool),
    }

    struct Row {
        name: &'static str,
        candidates: Candidates,
        loads: [bool; 2],
        data_missing: [bool; 2],
        other_page_size: Option<u64>,
        expect: Expect,
    }

    fn row(name: &'static str, candidates: Candidates, loads: [bool; 2], expect: Expect) -> Row {
        Row {
            name,
            candidates,
            loads,
            data_missing: [false, false],
            other_page_size: None,
            expect,
        }
    }

    use Expect::{Fails, Takes};
    use MetaSlot::{A, B};
    use RecoveryDecision::{
        NewerSingleSyncCommit as Newer, NewestAfterCorruptSuperblock as Newest,
        NextGenerationAfterCorruptSelected as Next, Superblock as Named,
    };

    fn corrupt_metadata(e: &MappedPageError, containing: &str) -> bool {
        matches!(e, MappedPageError::CorruptMetadata { detail } if detail.contains(containing))
    }

    /// The cases, by row: name, candidates (superblock, copy A, copy B), which copies load, and
    /// the outcome.
    #[rustfmt::skip]
    fn rows() -> Vec<Row> {
        let no_magic = || Err(DecodeError::new(PageKind::Meta, Reason::BadMagic));
        let torn = || Err(DecodeError::new(PageKind::Meta, Reason::BadChecksum));
        let bad_sb = || Err(DecodeError::new(PageKind::Superblock, Reason::BadChecksum));
        let no_sb = || Err(DecodeError::new(PageKind::Superblock, Reason::BadMagic));
        let both = [true, true];
        vec![
            row("3 newer single-sync copy", candidates(names(A, 4), flip(4), single(5)), both, Takes(B, Newer)),
            row("3 the newest of two newer", candidates(names(A, 4), single(6), single(5)), both, Takes(A, Newer)),
            row("3 the newest does not load: the next", candidates(names(A, 4), single(6), single(5)), [false, true], Takes(B, Newer)),
            row("3 two newer of one generation: none (row 5)", candidates(names(A, 4), single(5), single(5)), both, Takes(B, Next)),
            row("3 an unflagged newer copy: not this row", candidates(names(A, 4), flip(4), flip(6)), both, Takes(A, Named)),
            row("3 a newer one that does not load: row 4", candidates(names(A, 4), flip(4), single(5)), [true, false], Takes(A, Named)),
            Row { data_missing: [false, true], ..row("3 the newer copy's filled pages did not arrive: row 4", candidates(names(A, 4), flip(4), single(5)), both, Takes(A, Named)) },
            Row { data_missing: [false, true], ..row("4 a named copy's data checks are not checked", candidates(names(B, 5), flip(4), single(5)), both, Takes(B, Named)) },
            Row { data_missing: [false, true], ..row("7 data checks are not checked without a superblock", candidates(bad_sb(), flip(8), single(9)), both, Takes(B, Newest)) },
            row("4 the named copy", candidates(names(B, 7), flip(6), flip(7)), both, Takes(B, Named)),
            row("4 an older single-sync copy is ignored", candidates(names(B, 7), single(6), flip(7)), both, Takes(B, Named)),
            row("5 named copy torn, the other is g+1", candidates(names(A, 4), torn(), flip(5)), both, Takes(B, Next)),
            row("5 named copy does not load, the other is g+1", candidates(names(A, 4), flip(4), flip(5)), [false, true], Takes(B, Next)),
            row("5 named copy holds another generation", candidates(names(A, 4), flip(6), flip(5)), both, Takes(B, Next)),
            row("6 the other is older", candidates(names(A, 4), torn(), flip(3)), both, Fails(|e| corrupt_metadata(e, "not the successor"))),
            row("6 the other is g+2", candidates(names(A, 4), torn(), flip(6)), both, Fails(|e| corrupt_metadata(e, "not the successor"))),
            row("6 the other is g+1 but does not load", candidates(names(A, 4), torn(), flip(5)), [true, false], Fails(|e| corrupt_metadata(e, "copy B (generation 5)"))),
            row("6 named copy mismatched, the other malformed", candidates(names(A, 4), flip(3), torn()), both, Fails(|e| corrupt_metadata(e, "does not match the superblock"))),
            row("6 no successor of MAX_GENERATION", candidates(names(A, u64::MAX), torn(), flip(0)), both, Fails(|e| corrupt_metadata(e, "not the successor"))),
            row("7 the newest", candidates(bad_sb(), flip(8), flip(9)), both, Takes(B, Newest)),
            row("7 the newest does not load: the other", candidates(bad_sb(), flip(8), flip(9)), [true, false], Takes(A, Newest)),
            row("7 one well-formed copy", candidates(bad_sb(), torn(), flip(9)), both, Takes(B, Newest)),
            row("7 equal generations", candidates(bad_sb(), flip(9), flip(9)), both, Fails(|e| corrupt_metadata(e, "both copies claim generation 9"))),
            row("8 not a mappedpages file", candidates(no_sb(), no_magic(), no_magic()), both, Fails(|e| matches!(e, MappedPageError::NotAMappedPagesFile))),
            Row { other_page_size: Some(4096), ..row("8 a copy of another page size", candidates(no_sb(), no_magic(), no_magic()), both, Fails(|e| matches!(e, MappedPageError::PageSizeMismatch { found: 4096, expected: P }))) },
            row("9 generation 1 only, none loads", candidates(no_sb(), flip(1), no_magic()), [false, false], Fails(|e| matches!(e, MappedPageError::NotAMappedPagesFile))),
            row("10 none loads", candidates(bad_sb(), flip(3), flip(4)), [false, false], Fails(|e| corrupt_metadata(e, "copy B (generation 4)"))),
            row("10 magic absent, generation 2 does not load", candidates(no_sb(), flip(2), no_magic()), [false, false], Fails(|e| corrupt_metadata(e, "copy A (generation 2)"))),
            row("10 no well-formed copy", candidates(bad_sb(), torn(), no_magic()), both, Fails(|e| matches!(e, MappedPageError::CorruptSuperblock { detail } if detail.contains("copy A: checksum mismatch")))),
        ]
    }

    #[test]
    fn one_case_per_row_of_the_decision_table() {
        for case in rows() {
            let mut loader = FakeLoader {
                loads: case.loads,
                data_missing: case.data_missing,
                other_page_size: case.other_page_size,
            };
            let outcome = decide(&case.candidates, &mut loader);
            match (&case.expect, outcome) {
                (Takes(slot, decision), Ok(chosen)) => {
                    assert_eq!(
                        (chosen.slot, chosen.decision),
                        (*slot, *decision),
                        "{}",
                        case.name
                    )
                }
                (Fails(expected), Err(error)) => {
                    assert!(expected(&error), "{}: {error:?}", case.name)
                }
                (_, outcome) => panic!("{}: {outcome:?}", case.name),
            }
        }
    }

    #[test]
    fn rows_1_2_and_copies_of_another_page_size() {
        let sb = |reason| Err(DecodeError::new(PageKind::Superblock, reason));
        let unsupported = sb(Reason::UnsupportedVersion(3));
        assert!(matches!(
            rows_1_2_superblock_format(&unsupported, P),
            Err(MappedPageError::UnsupportedVersion { found: 3 })
        ));
        let other = Ok(Superblock {
            page_size: 2 * P,
            ..names(A, 1).unwrap()
        });
        assert!(matches!(
            rows_1_2_superblock_format(&other, P),
            Err(MappedPageError::PageSizeMismatch {
                found: 2048,
                expected: P
            })
        ));
        for fine in [names(A, 1), sb(Reason::BadChecksum)] {
            assert!(rows_1_2_superblock_format(&fine, P).is_ok());
        }
        let meta = |reason| Err(DecodeError::new(PageKind::Meta, reason));
        let metas = [flip(1), meta(Reason::PageSize(4096))];
        assert!(matches!(
            copies_page_size(&metas, P),
            Err(MappedPageError::PageSizeMismatch {
                found: 4096,
                expected: P
            })
        ));
        assert!(copies_page_size(&[flip(1), meta(Reason::BadChecksum)], P).is_ok());
    }
}
