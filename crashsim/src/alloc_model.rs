//! The built-in scenario: regular-page allocation workloads checked against the set of
//! acknowledged allocations.

use std::collections::BTreeSet;

use mappedpages::{CommitMode, MappedPageError, PageId, Pager, SimStorage};

use crate::identity::{Identity, scenario_identity};
use crate::subsets::splitmix64;
use crate::{Allowed, Finding, Invariant, Matched, Recorder, Recovered, Scenario};

/// One operation of a workload. Frees name pages by their rank among the allocated ones, so a
/// workload is a fixed sequence whatever ids the pager hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `alloc()`.
    Alloc,
    /// `alloc_bulk(n)`.
    AllocBulk(usize),
    /// `free` of the allocated page of this rank (modulo the number allocated).
    Free(usize),
    /// `free_bulk` of `count` allocated pages, every `step`-th from rank `start`.
    FreeBulk {
        /// First rank.
        start: usize,
        /// Distance between ranks.
        step: usize,
        /// How many.
        count: usize,
    },
}

/// The model: the set of allocated data pages.
pub type AllocModel = BTreeSet<u64>;

/// A named sequence of [`Op`]s over a `Pager<P, SimStorage>`.
#[derive(Clone, Debug)]
pub struct AllocScenario<const P: usize> {
    identity: Identity,
    ops: Vec<Op>,
}

impl<const P: usize> AllocScenario<P> {
    /// A scenario running `ops`.
    pub fn new(name: impl Into<String>, seed: u64, ops: Vec<Op>) -> Self {
        AllocScenario {
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
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
}

/// Applies `op`; on success returns the model after it.
fn apply<const P: usize>(
    pager: &mut Pager<P, SimStorage>,
    model: &AllocModel,
    op: Op,
) -> Result<Result<AllocModel, MappedPageError>, Finding> {
    let mut next = model.clone();
    let nth = |n: usize| model.iter().nth(n % model.len().max(1)).copied();
    let result = match op {
        Op::Alloc => pager.alloc().map(|id| vec![id]),
        Op::AllocBulk(count) => pager.alloc_bulk(count),
        Op::Free(rank) => {
            let Some(page) = nth(rank) else {
                return Ok(Ok(next));
            };
            next.remove(&page);
            pager.free(PageId::from_raw(page)).map(|()| Vec::new())
        }
        Op::FreeBulk { start, step, count } => {
            let pages: Vec<u64> = model
                .iter()
                .copied()
                .skip(start % model.len().max(1))
                .step_by(step.max(1))
                .take(count)
                .collect();
            for page in &pages {
                next.remove(page);
            }
            pager
                .free_bulk(pages.into_iter().map(PageId::from_raw).collect())
                .map(|()| Vec::new())
        }
    };
    match result {
        Ok(allocated) => {
            for id in allocated {
                if !next.insert(id.raw()) {
                    return Err(Finding::new(
                        Invariant::Durable,
                        format!(
                            "{op:?} handed out page {}, which is already allocated",
                            id.raw()
                        ),
                    ));
                }
            }
            Ok(Ok(next))
        }
        Err(error) => Ok(Err(error)),
    }
}

fn run_ops<const P: usize>(
    pager: &mut Pager<P, SimStorage>,
    rec: &mut Recorder<AllocModel>,
    start: &AllocModel,
    ops: &[Op],
) -> Result<(), Finding> {
    crate::run_ops_with(pager, rec, start, ops, apply::<P>)
}

impl<const P: usize> Scenario<P> for AllocScenario<P> {
    type Model = AllocModel;

    scenario_identity!();

    fn initial_model(&self) -> AllocModel {
        AllocModel::new()
    }

    fn run(
        &self,
        mut pager: Pager<P, SimStorage>,
        rec: &mut Recorder<AllocModel>,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        run_ops(&mut pager, rec, &AllocModel::new(), &self.ops)?;
        Ok(pager)
    }

    fn resume(
        &self,
        mut pager: Pager<P, SimStorage>,
        rec: &mut Recorder<AllocModel>,
        model: &AllocModel,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let ops = [
            Op::Alloc,
            Op::Free(1),
            Op::AllocBulk(5),
            Op::FreeBulk {
                start: 0,
                step: 2,
                count: 3,
            },
            Op::Alloc,
        ];
        run_ops(&mut pager, rec, model, &ops)?;
        Ok(pager)
    }

    fn check(
        &self,
        pager: &Recovered<'_, P>,
        allowed: &Allowed<'_, AllocModel>,
    ) -> Result<Matched, Finding> {
        let same = |model: &AllocModel| {
            pager.allocated_page_count() == model.len() as u64
                && pager
                    .iter_allocated_pages()
                    .map(|id| id.raw())
                    .eq(model.iter().copied())
        };
        if same(allowed.acknowledged) {
            return Ok(Matched::Acknowledged);
        }
        if allowed.in_flight.is_some_and(same) {
            return Ok(Matched::InFlight);
        }
        let recovered: AllocModel = pager.iter_allocated_pages().map(|id| id.raw()).collect();
        // An allocation acknowledged and not being freed by the operation in flight is lost:
        // durability (INV-3). Anything else is a state that no commit produced (INV-2).
        let kept_by_both = |page: &&u64| allowed.in_flight.is_none_or(|m| m.contains(page));
        if let Some(lost) = allowed
            .acknowledged
            .iter()
            .filter(kept_by_both)
            .find(|page| !recovered.contains(page))
        {
            return Err(Finding::new(
                Invariant::Durable,
                format!(
                    "acknowledged page {lost} is free after recovery ({} allocated, {} acknowledged)",
                    recovered.len(),
                    allowed.acknowledged.len()
                ),
            ));
        }
        Err(Finding::new(
            Invariant::Atomic,
            format!(
                "recovered {} allocated pages: neither the acknowledged state ({}) nor the one in flight ({:?})",
                recovered.len(),
                allowed.acknowledged.len(),
                allowed.in_flight.map(|m| m.len())
            ),
        ))
    }
}

/// Single allocations and frees, fragmenting until the allocation log folds.
pub fn single_ops() -> Vec<Op> {
    let mut ops = vec![Op::Alloc; 30];
    // Free ranks 3, 4, 5, ...: each skips one survivor, so no two freed pages are adjacent and
    // each free is its own log entry.
    ops.extend((0..70).map(|i| Op::Free(3 + i)));
    ops.extend([Op::Alloc; 10]);
    ops
}

/// Bulk allocations and frees of several sizes.
pub fn bulk_ops() -> Vec<Op> {
    vec![
        Op::AllocBulk(5),
        Op::AllocBulk(40),
        Op::FreeBulk {
            start: 1,
            step: 3,
            count: 10,
        },
        Op::AllocBulk(100),
        Op::FreeBulk {
            start: 0,
            step: 1,
            count: 30,
        },
        Op::AllocBulk(30),
        Op::FreeBulk {
            start: 2,
            step: 2,
            count: 61,
        },
        Op::AllocBulk(70),
    ]
}

/// Growth across several steps (16 → 32 → … → 512 pages) with frees in between.
pub fn growth_ops() -> Vec<Op> {
    let mut ops = Vec::new();
    for step in 0..6 {
        ops.push(Op::AllocBulk(8 << step));
        ops.push(Op::Alloc);
        ops.push(Op::Free(step));
    }
    ops
}

/// Allocations across three bitmap groups (1 KiB pages: 7,936 pages per group).
pub fn groups_ops() -> Vec<Op> {
    vec![
        Op::AllocBulk(9_000),
        Op::Free(8_000),
        Op::Free(8_100),
        Op::FreeBulk {
            start: 10,
            step: 500,
            count: 12,
        },
        Op::AllocBulk(8_000),
        Op::Alloc,
        Op::Free(100),
    ]
}

/// Allocations across six bitmap groups in one commit (format 3: four groups materialized
/// whole, none of them the last, so open loads them only on first use; SPEC.md §4.9), then
/// frees fragmenting group 0 until the log folds it, a free in a middle group, more
/// allocations.
pub fn wide_ops() -> Vec<Op> {
    vec![
        Op::AllocBulk(40_000),
        Op::FreeBulk {
            start: 10,
            step: 2,
            count: 200,
        },
        Op::Free(20_000),
        Op::AllocBulk(150),
        Op::Alloc,
        Op::Free(30_000),
    ]
}

/// Format 3 with two group table pages (SPEC.md §2.4.1: 62 entries per 1 KiB table page): one
/// allocation across 66 groups, then frees of one page in each group (more log entries than
/// the log holds: folds in both table pages in one commit), then one more allocation. Each
/// crash state checks a model of half a million pages: the workload is kept this short.
pub fn tables_ops() -> Vec<Op> {
    vec![
        Op::AllocBulk(520_000),
        Op::FreeBulk {
            start: 100,
            step: 7_920,
            count: 66,
        },
        Op::Alloc,
    ]
}

/// Alloc and free of the same pages over and over (the log shrinks entries back).
pub fn churn_ops() -> Vec<Op> {
    let mut ops = vec![Op::AllocBulk(6)];
    for i in 0..40 {
        ops.push(Op::Alloc);
        ops.push(Op::Free(usize::MAX - i % 3)); // one of the highest ranks
    }
    ops
}

/// The shape of a seeded random mix of regular operations ([`mixed_ops`]).
#[derive(Clone, Copy, Debug)]
pub struct MixShape {
    /// Above this many pages owned, every operation frees.
    pub max_owned: i64,
    /// A roll (0..100) at or above this frees, when something is owned.
    pub free_from_percent: u64,
    /// A roll below this allocates one page; from it up to `free_from_percent`, a bulk.
    pub single_alloc_below_percent: u64,
    /// Bulk operations take `bulk_min + next(spread)` pages.
    pub bulk_min: usize,
    /// Spread of a bulk allocation's size.
    pub bulk_alloc_spread: u64,
    /// Spread of a bulk free's size.
    pub bulk_free_spread: u64,
    /// A bulk free starts at a rank below this.
    pub free_start_spread: u64,
    /// A bulk free steps by `1 + next(free_step_spread)` ranks.
    pub free_step_spread: u64,
}

impl MixShape {
    /// The `mix-<seed>` workloads: every operation; the pager stays under ~400 pages.
    pub const REGULAR: MixShape = MixShape {
        max_owned: 300,
        free_from_percent: 50,
        single_alloc_below_percent: 30,
        bulk_min: 1,
        bulk_alloc_spread: 40,
        bulk_free_spread: 30,
        free_start_spread: 64,
        free_step_spread: 4,
    };
}

/// A seeded random mix of every operation; the pager stays under ~400 pages.
pub fn random_ops(seed: u64, count: usize) -> Vec<Op> {
    mixed_ops(seed, count, &MixShape::REGULAR)
}

/// `count` seeded regular operations of the given shape: single and bulk allocations, frees of
/// single pages and of sets, by rank among the pages owned.
pub fn mixed_ops(seed: u64, count: usize, shape: &MixShape) -> Vec<Op> {
    let mut state = seed;
    let mut next = |bound: u64| splitmix64(&mut state) % bound;
    let mut owned: i64 = 0;
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        let roll = next(100);
        let op = if owned > shape.max_owned || (roll >= shape.free_from_percent && owned > 0) {
            if roll % 3 == 0 {
                let n = shape.bulk_min + next(shape.bulk_free_spread) as usize;
                owned -= (n as i64).min(owned);
                Op::FreeBulk {
                    start: next(shape.free_start_spread) as usize,
                    step: 1 + next(shape.free_step_spread) as usize,
                    count: n,
                }
            } else {
                owned -= 1;
                Op::Free(next(1 << 16) as usize)
            }
        } else if roll < shape.single_alloc_below_percent {
            owned += 1;
            Op::Alloc
        } else {
            let n = shape.bulk_min + next(shape.bulk_alloc_spread) as usize;
            owned += n as i64;
            Op::AllocBulk(n)
        };
        ops.push(op);
    }
    ops
}
