//! The crash-points workload (moved here from the mappedpages package's `tests/crash_points.rs`,
//! whose own `Op`, `check_image` and `check_well_formed` re-implemented crashsim's): allocations,
//! frees, bulk allocations and bulk frees that grow the file several times and fill the
//! allocation log until bitmap groups are folded, explored by crashsim's explorer and judged by
//! its judge in both commit modes: a crash at every sync (every subset of up to 8 in-flight
//! sectors, 512- and 4096-byte sectors, both file lengths) must open (INV-1) to the last
//! acknowledged state or the one in flight (INV-2, INV-3), well-formed (INV-5), survive a crash
//! during its own recovery and go on after it (INV-6); a failure at every sync and every growth
//! loses nothing acknowledged (INV-7).

use crashsim::alloc_model::{AllocModel, AllocScenario, Op};
use crashsim::{Config, Phases, Recorder, Scenario, explore};
use mappedpages::{CommitMode, Pager, SimEvent, SimStorage};

const P: usize = 1024;

fn workload() -> Vec<Op> {
    let mut ops = vec![
        Op::Alloc,
        Op::Alloc,
        Op::Alloc,
        Op::AllocBulk(20),
        Op::Free(1),
    ];
    ops.push(Op::FreeBulk {
        start: 2,
        step: 3,
        count: 5,
    });
    ops.push(Op::AllocBulk(120));
    // Fragmenting single frees: one log entry each, until the log (56 entries at 1 KiB) folds.
    // Freeing rank 3 + i skips one survivor each time, so no two freed pages are adjacent.
    for i in 0..70 {
        ops.push(Op::Free(3 + i));
    }
    ops.push(Op::AllocBulk(300));
    ops.push(Op::Alloc);
    ops.push(Op::FreeBulk {
        start: 0,
        step: 2,
        count: 40,
    });
    ops.push(Op::Alloc);
    ops
}

fn scenario(mode: CommitMode) -> AllocScenario<P> {
    AllocScenario::<P>::new("crash-points", 0, workload()).with_commit_mode(mode)
}

/// The workload does what the crash states are meant to cover: every operation acknowledged,
/// the file grown several times, bitmap groups folded.
#[test]
fn the_workload_grows_the_file_and_folds_bitmap_groups() {
    for mode in [CommitMode::Flip, CommitMode::SingleSync] {
        let scenario = scenario(mode);
        let mut pager =
            Pager::<P, SimStorage>::create_in(SimStorage::new()).expect("create on SimStorage");
        pager.set_commit_mode(mode);
        let create_syncs = pager.storage().sync_count();
        let mut rec = Recorder::<AllocModel>::new();
        let pager = scenario.run(pager, &mut rec).expect("the workload runs");
        assert_eq!(
            rec.acks().len(),
            workload().len(),
            "{mode:?}: every op acknowledged"
        );
        assert!(pager.page_count() > 128, "{mode:?}: the file grows");
        assert!(
            pager.storage().grow_count() >= 4,
            "{mode:?}: at least three growths after create"
        );
        // A fold adds bitmap slot pages to a commit's barrier: more than its metadata copy (and,
        // in single-sync mode, the superblock).
        let commit_pages = if mode == CommitMode::SingleSync { 2 } else { 1 };
        let groups_folded = pager
            .storage()
            .events()
            .iter()
            .skip(create_syncs as usize)
            .any(|event| {
                matches!(event, SimEvent::Sync { ranges, .. }
                if ranges.iter().map(|r| r.end - r.start).sum::<u64>() > commit_pages * P as u64)
            });
        assert!(groups_folded, "{mode:?}: the workload folds bitmap groups");
    }
}

#[test]
fn crash_at_every_sync_point_and_every_failure_recovers_an_allowed_state() {
    let phases = Phases {
        crashes: true,
        recovery_crashes: true,
        chains: true,
        failed_syncs: true,
        failed_growth: true,
        ..Phases::none()
    };
    for mode in [CommitMode::Flip, CommitMode::SingleSync] {
        let config = Config {
            phases,
            ..Config::quick()
        };
        let outcome = explore(&scenario(mode), &config);
        println!(
            "{}: {} syncs, {} crash states",
            outcome.workload, outcome.syncs, outcome.states
        );
        assert!(
            outcome.violations.is_empty(),
            "{}",
            outcome
                .violations
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(!outcome.truncated, "explored completely");
        assert!(
            outcome.syncs > workload().len() as u64,
            "every operation commits: {} syncs",
            outcome.syncs
        );
    }
}
