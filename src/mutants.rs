//! Deliberately broken variants of the commit and recovery protocols, for proving that the crash
//! explorer (crashsim) can fail.
//!
//! Compiled into the public API only with the `mutants` cargo feature, which nothing enables by
//! default; without it every hook is a constant `false` and compiles away. At most one mutant is
//! active per process at a time.
//!
//! ```
//! # #[cfg(feature = "mutants")] {
//! use mappedpages::mutants::{self, Mutant};
//!
//! mutants::set_active(Some(Mutant::SkipMetadataBarrier));
//! assert_eq!(mutants::active_mutant(), Some(Mutant::SkipMetadataBarrier));
//! mutants::set_active(None);
//! # }
//! ```

/// A deliberately broken protocol variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(not(feature = "mutants"), allow(dead_code))]
pub enum Mutant {
    /// Commit: skip the barrier that makes the new metadata copy and folded slots durable.
    SkipMetadataBarrier,
    /// Commit: write the superblock before the metadata copy is durable (one barrier for both).
    FlipBeforeMetadataDurable,
    /// Commit: write the new state into the active metadata copy, in place.
    WriteActiveCopyInPlace,
    /// Commit: skip the barrier after the superblock flip (acknowledge before it is durable).
    SkipSuperblockBarrier,
    /// Commit: fold a group into its current slot, in place.
    FoldIntoCurrentSlot,
    /// Recovery: take a group's (format 3: a table page's) newest valid slot even if it is newer
    /// than the metadata copy.
    IgnoreSlotGenerationBound,
    /// Recovery: accept a metadata copy whose checksum does not match.
    TrustBadChecksum,
    /// Recovery: when the selected copy is unusable, take the other copy whatever its generation.
    FallBackBlindly,
    /// Recovery: do not invalidate pages left by a commit that never completed.
    SkipScrub,
    /// Pager: after a failed sync, keep the in-memory change and stay usable (no poisoning).
    KeepStateAfterFailedSync,
    /// Protected commit: make the staged copy durable only after the superblock flip.
    PromoteBeforeStagedDurable,
    /// Protected writer: start from the inactive copy (two commits old) instead of the committed one.
    WriterStartsFromInactive,
    /// Commit: write a changed directory block into its current slot, in place.
    DirectoryInPlace,
    /// Protected alloc: hand out a reused backing page without zeroing it.
    SkipZeroingNewProtected,
    /// Single-sync commit: also write the superblock naming the new copy, in the same barrier.
    SingleSyncFlipInBarrier,
    /// Recovery: take a newer single-sync copy without checking the protected contents it
    /// committed.
    SingleSyncSkipContentCheck,
    /// `SharedPager` group commit: acknowledge every caller of the group (publish its result and
    /// wake it) before the group's commit, instead of after it is durable.
    AckBeforeGroupSync,
    /// Recovery: do not restore a directory block's current slot that is intact on one mirror
    /// page only (SPEC.md §4.3 step 3).
    SkipMirrorRepair,
    /// `alloc_with` commit: leave the filled pages out of the barrier (acknowledge the
    /// allocation before its contents are durable).
    DataLeftOutOfBarrier,
    /// Recovery: take a newer single-sync copy without checking its data checks (SPEC.md §4.1
    /// step 9).
    SkipDataCheck,
    /// Pager: hand out a page of the last commit's data checks for writing without settling
    /// first (SPEC.md §3.6.1).
    WriteUnsettledPage,
    /// Commit: leave the pages attached with `Pager::attach_to_next_commit` out of the barrier
    /// (acknowledge the commit before their contents are durable; SPEC.md §3.6.2).
    AttachedLeftOutOfBarrier,
    /// Commit (format 3): write a changed group table page into its current slot, in place.
    TableInPlace,
    /// Recovery (format 3): take the slot a group's table entry pins if it decodes, whatever its
    /// generation and checksum (an older bitmap in the pinned slot's place goes unnoticed).
    SkipPinnedSlotCheck,
    /// Lazy group load (format 3): when the slot a group's entry pins does not match it, use the
    /// group's other slot if it decodes (an older bitmap silently in use; SPEC.md §4.9, INV-8).
    LazyLoadAcceptsOtherSlot,
    /// Recovery (format 3): leave loading the groups the chosen copy's commit folded to their
    /// first use, instead of checking their pinned slots at open (SPEC.md §4.1 step 3): a torn
    /// slot of the last single-sync commit is then found after the copy was taken.
    SkipLastCommitSlotCheck,
    /// `SharedPager` group commit: publish the group to readers (land it) before its barrier,
    /// so a reader sees allocations that are not durable yet (SPEC.md §3.10). Changes what
    /// readers see, never what is durable: caught by the loom models, not by crashsim.
    PublishBeforeBarrier,
}

#[cfg_attr(not(feature = "mutants"), allow(dead_code))]
impl Mutant {
    /// Every mutant, in declaration order. crashsim catches each one (`crashsim/tests/mutants.rs`);
    /// those of [`SHARED`](Self::SHARED) only its concurrent workloads (`threads-8`, …) can.
    pub const ALL: [Mutant; 26] = [
        Mutant::SkipMetadataBarrier,
        Mutant::FlipBeforeMetadataDurable,
        Mutant::WriteActiveCopyInPlace,
        Mutant::SkipSuperblockBarrier,
        Mutant::FoldIntoCurrentSlot,
        Mutant::IgnoreSlotGenerationBound,
        Mutant::TrustBadChecksum,
        Mutant::FallBackBlindly,
        Mutant::SkipScrub,
        Mutant::KeepStateAfterFailedSync,
        Mutant::PromoteBeforeStagedDurable,
        Mutant::WriterStartsFromInactive,
        Mutant::DirectoryInPlace,
        Mutant::SkipZeroingNewProtected,
        Mutant::SingleSyncFlipInBarrier,
        Mutant::SingleSyncSkipContentCheck,
        Mutant::AckBeforeGroupSync,
        Mutant::SkipMirrorRepair,
        Mutant::DataLeftOutOfBarrier,
        Mutant::SkipDataCheck,
        Mutant::WriteUnsettledPage,
        Mutant::AttachedLeftOutOfBarrier,
        Mutant::TableInPlace,
        Mutant::SkipPinnedSlotCheck,
        Mutant::LazyLoadAcceptsOtherSlot,
        Mutant::SkipLastCommitSlotCheck,
    ];

    /// The mutants of `SharedPager`'s group commit (src/shared.rs), in declaration order; also
    /// in [`ALL`](Self::ALL). Caught by crashsim's concurrent workloads (`threads-8`, …: real
    /// threads on one `SharedPager`) and by the loom models (`tests/loom.rs`,
    /// `--features mutants`); single-threaded workloads never reach them.
    pub const SHARED: [Mutant; 1] = [Mutant::AckBeforeGroupSync];

    /// The mutants only the loom models can catch (`tests/loom.rs`, `--features mutants`): they
    /// change what a reader sees while a barrier runs, not what is durable, so no crash state
    /// shows them. Not in [`ALL`](Self::ALL), crashsim's list.
    pub const LOOM: [Mutant; 1] = [Mutant::PublishBeforeBarrier];

    /// A stable kebab-case name, for command lines and reports.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::SkipMetadataBarrier => "skip-metadata-barrier",
            Mutant::FlipBeforeMetadataDurable => "flip-before-metadata-durable",
            Mutant::WriteActiveCopyInPlace => "write-active-copy-in-place",
            Mutant::SkipSuperblockBarrier => "skip-superblock-barrier",
            Mutant::FoldIntoCurrentSlot => "fold-into-current-slot",
            Mutant::IgnoreSlotGenerationBound => "ignore-slot-generation-bound",
            Mutant::TrustBadChecksum => "trust-bad-checksum",
            Mutant::FallBackBlindly => "fall-back-blindly",
            Mutant::SkipScrub => "skip-scrub",
            Mutant::KeepStateAfterFailedSync => "keep-state-after-failed-sync",
            Mutant::PromoteBeforeStagedDurable => "promote-before-staged-durable",
            Mutant::WriterStartsFromInactive => "writer-starts-from-inactive",
            Mutant::DirectoryInPlace => "directory-in-place",
            Mutant::SkipZeroingNewProtected => "skip-zeroing-new-protected",
            Mutant::SingleSyncFlipInBarrier => "single-sync-flip-in-barrier",
            Mutant::SingleSyncSkipContentCheck => "single-sync-skip-content-check",
            Mutant::AckBeforeGroupSync => "ack-before-group-sync",
            Mutant::SkipMirrorRepair => "skip-mirror-repair",
            Mutant::DataLeftOutOfBarrier => "data-left-out-of-barrier",
            Mutant::SkipDataCheck => "skip-data-check",
            Mutant::WriteUnsettledPage => "write-unsettled-page",
            Mutant::AttachedLeftOutOfBarrier => "attached-left-out-of-barrier",
            Mutant::TableInPlace => "table-in-place",
            Mutant::SkipPinnedSlotCheck => "skip-pinned-slot-check",
            Mutant::LazyLoadAcceptsOtherSlot => "lazy-load-accepts-other-slot",
            Mutant::SkipLastCommitSlotCheck => "skip-last-commit-slot-check",
            Mutant::PublishBeforeBarrier => "publish-before-barrier",
        }
    }

    /// The mutant called `name` (see [`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL
            .into_iter()
            .chain(Mutant::LOOM)
            .find(|m| m.name() == name)
    }
}

#[cfg(feature = "mutants")]
static ACTIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Activates `mutant` for the whole process (`None` restores the correct protocol).
#[cfg(feature = "mutants")]
pub fn set_active(mutant: Option<Mutant>) {
    let value = mutant.map_or(0, |m| m as usize + 1);
    ACTIVE.store(value, std::sync::atomic::Ordering::SeqCst);
}

/// The active mutant, if any.
#[cfg(feature = "mutants")]
pub fn active_mutant() -> Option<Mutant> {
    let value = ACTIVE.load(std::sync::atomic::Ordering::SeqCst);
    value.checked_sub(1).and_then(|index| {
        Mutant::ALL
            .into_iter()
            .chain(Mutant::LOOM)
            .find(|&m| m as usize == index)
    })
}

/// True when `mutant` is the active one. Always false without the `mutants` feature.
#[inline(always)]
pub(crate) fn active(mutant: Mutant) -> bool {
    #[cfg(feature = "mutants")]
    {
        active_mutant() == Some(mutant)
    }
    #[cfg(not(feature = "mutants"))]
    {
        let _ = mutant;
        false
    }
}
