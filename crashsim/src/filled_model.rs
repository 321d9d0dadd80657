//! The filled-page scenario: pages allocated with their contents (`alloc_with`,
//! `alloc_bulk_with`, SPEC.md §3.6.1), written again in place, and freed, checked against the
//! acknowledged allocation set *and* every page's bytes.
//!
//! After a crash a filled page must be free or hold exactly the bytes its fill left, also when
//! the commit that filled it was in flight (INV-15); a page written again (`get_mut` +
//! `sync_page`) holds its old or its new bytes, or, while that write is in flight, anything. The
//! recovered allocation set is the acknowledged one or the one in flight (INV-2, INV-3). Writing
//! a page right after the commit that filled it makes the pager settle that commit first
//! (§3.6.1): without it, recovery would drop the commit and the page with it (INV-3).

use std::collections::BTreeMap;

use mappedpages::{MappedPageError, PageId, Pager, SimStorage};

use crate::identity::{Identity, scenario_identity};
use crate::subsets::splitmix64;
use crate::{Allowed, Finding, Invariant, Matched, Recorder, Recovered, Scenario};

/// One operation of a filled-page workload. Pages are named by their rank among the allocated
/// ones (modulo their number), so a workload is a fixed sequence whatever ids the pager hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilledOp {
    /// `alloc_with`, filling the page with a fresh pattern.
    AllocWith,
    /// `alloc_bulk_with(n)`, a fresh pattern per page.
    AllocBulkWith(usize),
    /// `get_mut` of the page of this rank, a fresh pattern over all of it, `sync_page`.
    Rewrite(usize),
    /// `get_mut` of the page of this rank, a fresh pattern over all of it,
    /// `attach_to_next_commit`: durable in the barrier of the next operation's commit (SPEC.md
    /// §3.6.2, INV-16), not before.
    RewriteAttached(usize),
    /// `free` of the page of this rank.
    Free(usize),
    /// `free_bulk` of every `step`-th page from rank `start`, `count` of them: fragments the
    /// free space, so that a later bulk fill lies in many runs.
    FreeEvery {
        /// First rank.
        start: usize,
        /// Distance between ranks.
        step: usize,
        /// How many.
        count: usize,
    },
}

/// What a page must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// Exactly the pattern of this tag ([`pattern`]).
    Exact(u64),
    /// The pattern of this tag, written in place (`get_mut` + `sync_page`) by the operation
    /// that produced this model: any bytes are accepted while this model is the newest (a
    /// regular page write is not atomic, and a crash state recovered while it was in flight may
    /// hold any mix); the next operation's model expects the pattern exactly. The in-place write
    /// is not what INV-15 is about: what matters here is that it never loses the commit that
    /// filled the page (INV-3, settling).
    Rewritten(u64),
    /// The pattern of this tag, written in place and attached to the next commit
    /// (`attach_to_next_commit`), which has not run yet: any bytes.
    AttachedPending(u64),
    /// The pattern of this tag, written in place and attached to the commit of the operation
    /// that produced this model: like [`Rewritten`](Self::Rewritten) (the next operation's model
    /// expects it exactly), and in flip mode exact whenever the recovered allocation set is this
    /// model's (INV-16).
    Attached(u64),
    /// The pattern of this tag, written in place and attached to a commit that has returned:
    /// exactly, like [`Exact`](Self::Exact), but a page that lost these bytes lost acknowledged
    /// attached data, so the finding is INV-16 (in both commit modes).
    AttachedAcknowledged(u64),
    /// Not known: the page was filled before a recovery the scenario resumed from.
    Any,
}

/// The model: every allocated page and what it holds, and the next pattern's tag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilledModel {
    /// Allocated pages.
    pub pages: BTreeMap<u64, Content>,
    /// The tag of the next pattern written.
    pub next_tag: u64,
}

/// The bytes of the pattern `tag`, `page_size` long. Every write uses a tag of its own, and no
/// two tags share a 512-byte sector, so a page that mixes sectors of two writes (or of a write
/// and the page's old bytes) matches neither.
pub fn pattern(tag: u64, page_size: usize) -> Vec<u8> {
    let mut state = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..page_size / 8)
        .flat_map(|_| splitmix64(&mut state).to_le_bytes())
        .collect()
}

/// A named sequence of [`FilledOp`]s over a `Pager<P, SimStorage>`.
#[derive(Clone, Debug)]
pub struct FilledScenario<const P: usize> {
    identity: Identity,
    ops: Vec<FilledOp>,
}

impl<const P: usize> FilledScenario<P> {
    /// A scenario running `ops`.
    pub fn new(name: impl Into<String>, seed: u64, ops: Vec<FilledOp>) -> Self {
        FilledScenario {
            identity: Identity::new(name, seed),
            ops,
        }
    }

    /// The same workload committing in `mode`.
    pub fn with_commit_mode(mut self, mode: mappedpages::CommitMode) -> Self {
        self.identity.set_commit_mode(mode);
        self
    }
}

/// The page of rank `rank` (modulo the number allocated), if any is.
fn nth(model: &FilledModel, rank: usize) -> Option<u64> {
    let count = model.pages.len();
    (count > 0).then(|| model.pages.keys().nth(rank % count).copied())?
}

/// Applies `op`; on success returns the model after it.
fn apply<const P: usize>(
    pager: &mut Pager<P, SimStorage>,
    model: &FilledModel,
    op: FilledOp,
) -> Result<Result<FilledModel, MappedPageError>, Finding> {
    let mut next = model.clone();
    for content in next.pages.values_mut() {
        match *content {
            Content::Rewritten(tag) => *content = Content::Exact(tag),
            Content::Attached(tag) => *content = Content::AttachedAcknowledged(tag),
            _ => {}
        }
    }
    let first_tag = next.next_tag;
    let result = match op {
        FilledOp::AllocWith => {
            commits(&mut next);
            pager
                .alloc_with(|page| fill(page, first_tag))
                .map(|id| vec![id])
        }
        FilledOp::AllocBulkWith(count) => {
            if count > 0 {
                commits(&mut next);
            }
            pager.alloc_bulk_with(count, |index, page| fill(page, first_tag + index as u64))
        }
        FilledOp::Rewrite(rank) => {
            let Some(page) = nth(model, rank) else {
                return Ok(Ok(next));
            };
            next.pages.insert(page, Content::Rewritten(first_tag));
            next.next_tag += 1;
            return Ok(rewrite(pager, page, first_tag).map(|()| next));
        }
        FilledOp::RewriteAttached(rank) => {
            let Some(page) = nth(model, rank) else {
                return Ok(Ok(next));
            };
            next.pages.insert(page, Content::AttachedPending(first_tag));
            next.next_tag += 1;
            return Ok(rewrite_attached(pager, page, first_tag).map(|()| next));
        }
        FilledOp::Free(rank) => {
            let Some(page) = nth(model, rank) else {
                return Ok(Ok(next));
            };
            next.pages.remove(&page);
            commits(&mut next);
            return Ok(pager.free(PageId::from_raw(page)).map(|()| next));
        }
        FilledOp::FreeEvery { start, step, count } => {
            let pages: Vec<u64> = model
                .pages
                .keys()
                .copied()
                .skip(start % model.pages.len().max(1))
                .step_by(step.max(1))
                .take(count)
                .collect();
            for page in &pages {
                next.pages.remove(page);
            }
            if !pages.is_empty() {
                commits(&mut next);
            }
            let ids = pages.into_iter().map(PageId::from_raw).collect();
            return Ok(pager.free_bulk(ids).map(|()| next));
        }
    };
    match result {
        Ok(ids) => {
            for (index, id) in ids.iter().enumerate() {
                let content = Content::Exact(first_tag + index as u64);
                if next.pages.insert(id.raw(), content).is_some() {
                    return Err(Finding::new(
                        Invariant::Durable,
                        format!(
                            "{op:?} handed out page {}, which is already allocated",
                            id.raw()
                        ),
                    ));
                }
            }
            next.next_tag += ids.len() as u64;
            Ok(Ok(next))
        }
        Err(error) => Ok(Err(error)),
    }
}

/// The operation producing `next` commits: the pages attached before it are attached to its
/// commit.
fn commits(next: &mut FilledModel) {
    for content in next.pages.values_mut() {
        if let Content::AttachedPending(tag) = *content {
            *content = Content::Attached(tag);
        }
    }
}

/// Writes pattern `tag` over `page`.
fn fill(page: &mut mappedpages::MappedPage, tag: u64) {
    let bytes = page.as_bytes_mut();
    bytes.copy_from_slice(&pattern(tag, bytes.len()));
}

/// `get_mut` + pattern + `sync_page` of `page`.
fn rewrite<const P: usize>(
    pager: &mut Pager<P, SimStorage>,
    page: u64,
    tag: u64,
) -> Result<(), MappedPageError> {
    let id = write_pattern(pager, page, tag)?;
    pager.sync_page(id)
}

/// `get_mut` + pattern + `attach_to_next_commit` of `page`: durable with the next commit.
fn rewrite_attached<const P: usize>(
    pager: &mut Pager<P, SimStorage>,
    page: u64,
    tag: u64,
) -> Result<(), MappedPageError> {
    let id = write_pattern(pager, page, tag)?;
    pager.attach_to_next_commit(id)
}

/// `get_mut` + pattern `tag` over all of `page` (not durable).
fn write_pattern<const P: usize>(
    pager: &mut Pager<P, SimStorage>,
    page: u64,
    tag: u64,
) -> Result<PageId<P>, MappedPageError> {
    let id = PageId::from_raw(page);
    id.get_mut(pager)?
        .as_bytes_mut()
        .copy_from_slice(&pattern(tag, P));
    Ok(id)
}

fn run_ops<const P: usize>(
    pager: &mut Pager<P, SimStorage>,
    rec: &mut Recorder<FilledModel>,
    start: &FilledModel,
    ops: &[FilledOp],
) -> Result<(), Finding> {
    crate::run_ops_with(pager, rec, start, ops, apply::<P>)
}

impl<const P: usize> Scenario<P> for FilledScenario<P> {
    type Model = FilledModel;

    scenario_identity!();

    fn initial_model(&self) -> FilledModel {
        FilledModel::default()
    }

    fn run(
        &self,
        mut pager: Pager<P, SimStorage>,
        rec: &mut Recorder<FilledModel>,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        run_ops(&mut pager, rec, &FilledModel::default(), &self.ops)?;
        Ok(pager)
    }

    fn resume(
        &self,
        mut pager: Pager<P, SimStorage>,
        rec: &mut Recorder<FilledModel>,
        model: &FilledModel,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        // What the pages hold was checked before the resume; from here on only what the resumed
        // operations write is known (the tags start far above any of the run's).
        let start = FilledModel {
            pages: model
                .pages
                .keys()
                .map(|&page| (page, Content::Any))
                .collect(),
            next_tag: 1 << 40,
        };
        let ops = [
            FilledOp::AllocWith,
            FilledOp::Rewrite(usize::MAX),
            FilledOp::AllocBulkWith(3),
            FilledOp::RewriteAttached(1),
            FilledOp::AllocWith,
            FilledOp::AllocWith,
            FilledOp::Free(0),
        ];
        run_ops(&mut pager, rec, &start, &ops)?;
        Ok(pager)
    }

    fn check(
        &self,
        pager: &Recovered<'_, P>,
        allowed: &Allowed<'_, FilledModel>,
    ) -> Result<Matched, Finding> {
        let recovered: Vec<(u64, &[u8])> = pager
            .iter_allocated_pages()
            .map(|id| Ok((id.raw(), id.get(pager)?.as_bytes())))
            .collect::<Result<_, MappedPageError>>()
            .map_err(|e| Finding::new(Invariant::Opens, format!("a recovered page: {e}")))?;
        let matched = check_models(&recovered, allowed)?;
        check_attached(&recovered, allowed, matched, self.identity.commit_mode())?;
        Ok(matched)
    }
}

/// INV-16 in flip mode: an attached page of the model the recovered state matched holds exactly
/// its bytes, because that model's allocation set is durable only after the barrier that made
/// the page durable (SPEC.md §3.6.2). In single-sync mode the commit and the page share one
/// barrier, so a recovered commit says nothing about the page: there INV-16 is checked by the
/// models of the operations after it, which expect the bytes exactly (as after a `sync_page`;
/// [`Content::AttachedAcknowledged`], reported as INV-16 by `wrong_contents_finding`).
fn check_attached(
    recovered: &[(u64, &[u8])],
    allowed: &Allowed<'_, FilledModel>,
    matched: Matched,
    mode: mappedpages::CommitMode,
) -> Result<(), Finding> {
    if mode != mappedpages::CommitMode::Flip {
        return Ok(());
    }
    let model = match matched {
        Matched::Acknowledged => allowed.acknowledged,
        Matched::InFlight => match allowed.in_flight {
            Some(model) => model,
            None => return Ok(()),
        },
    };
    for (page, bytes) in recovered {
        if let Some(Content::Attached(tag)) = model.pages.get(page)
            && *bytes != pattern(*tag, bytes.len()).as_slice()
        {
            return Err(Finding::new(
                Invariant::AttachedPages,
                format!(
                    "page {page} was attached to a commit that recovery kept ({matched:?} \
                     state, flip mode) but does not hold the bytes it had then (tag {tag})"
                ),
            ));
        }
    }
    Ok(())
}

/// INV-2, INV-3, INV-15: the recovered allocation set is the acknowledged one or the one in
/// flight, and each page holds what one of the models allows.
fn check_models(
    recovered: &[(u64, &[u8])],
    allowed: &Allowed<'_, FilledModel>,
) -> Result<Matched, Finding> {
    if holds_all(recovered, allowed.acknowledged) {
        return Ok(Matched::Acknowledged);
    }
    if allowed
        .in_flight
        .is_some_and(|model| holds_all(recovered, model))
    {
        return Ok(Matched::InFlight);
    }
    let pages: Vec<u64> = recovered.iter().map(|(page, _)| *page).collect();
    let same = |model: &FilledModel| model.pages.keys().copied().eq(pages.iter().copied());
    let matched = if same(allowed.acknowledged) {
        Matched::Acknowledged
    } else if allowed.in_flight.is_some_and(same) {
        Matched::InFlight
    } else {
        return Err(allocation_finding(&pages, allowed));
    };
    // The allocation is an allowed one; each page must hold what one of the models allows
    // (a media-damage rollback, SPEC.md §3.2.1, pairs the previous commit's allocation with
    // the contents written since).
    let wrong = recovered.iter().find(|(page, bytes)| {
        let holds_in = |model: &FilledModel| holds(model.pages.get(page), bytes);
        !holds_in(allowed.acknowledged) && !allowed.in_flight.is_some_and(holds_in)
    });
    match wrong {
        None => Ok(matched),
        Some((page, _)) => Err(wrong_contents_finding(*page, allowed)),
    }
}

/// The finding for an allocated page that holds what neither model allows: INV-16 if the
/// acknowledged model has it as attached to a commit that returned, else INV-15.
fn wrong_contents_finding(page: u64, allowed: &Allowed<'_, FilledModel>) -> Finding {
    let acknowledged = allowed.acknowledged.pages.get(&page);
    let in_flight = allowed.in_flight.and_then(|m| m.pages.get(&page));
    if let Some(Content::AttachedAcknowledged(tag)) = acknowledged {
        return Finding::new(
            Invariant::AttachedPages,
            format!(
                "page {page} was attached to a commit that returned, but does not hold the \
                 bytes it had then (tag {tag}); in flight: {in_flight:?}"
            ),
        );
    }
    Finding::new(
        Invariant::FilledPages,
        format!(
            "page {page} is allocated but holds neither its acknowledged contents \
             ({acknowledged:?}) nor those in flight ({in_flight:?})"
        ),
    )
}

/// Whether `bytes` are what `content` allows.
fn holds(content: Option<&Content>, bytes: &[u8]) -> bool {
    match content {
        None => false,
        Some(
            Content::Any
            | Content::Rewritten(_)
            | Content::AttachedPending(_)
            | Content::Attached(_),
        ) => true,
        Some(Content::Exact(tag) | Content::AttachedAcknowledged(tag)) => {
            bytes == pattern(*tag, bytes.len()).as_slice()
        }
    }
}

/// Whether `recovered` (every allocated page and its bytes) is `model`: the same pages, each
/// holding what the model allows.
fn holds_all(recovered: &[(u64, &[u8])], model: &FilledModel) -> bool {
    recovered.len() == model.pages.len()
        && recovered
            .iter()
            .zip(&model.pages)
            .all(|((page, bytes), (model_page, content))| {
                page == model_page && holds(Some(content), bytes)
            })
}

/// The finding for a recovered allocation set that is neither allowed one: a lost
/// acknowledged page (INV-3) or a state no commit produced (INV-2).
fn allocation_finding(recovered: &[u64], allowed: &Allowed<'_, FilledModel>) -> Finding {
    let kept_by_both = |page: &&u64| allowed.in_flight.is_none_or(|m| m.pages.contains_key(page));
    if let Some(lost) = allowed
        .acknowledged
        .pages
        .keys()
        .filter(kept_by_both)
        .find(|page| recovered.binary_search(page).is_err())
    {
        return Finding::new(
            Invariant::Durable,
            format!(
                "acknowledged page {lost} is free after recovery ({} allocated, {} acknowledged)",
                recovered.len(),
                allowed.acknowledged.pages.len()
            ),
        );
    }
    Finding::new(
        Invariant::Atomic,
        format!(
            "recovered {} allocated pages: neither the acknowledged state ({}) nor the one in flight ({:?})",
            recovered.len(),
            allowed.acknowledged.pages.len(),
            allowed.in_flight.map(|m| m.pages.len())
        ),
    )
}

/// The `filled` workload: fills, in-place writes right after a fill (settling) and later, frees,
/// reuse of freed pages, and a bulk fill into free space fragmented into more runs than a
/// single-sync commit's data checks hold at 1 KiB (its fallback, §3.6.1).
pub fn filled_ops() -> Vec<FilledOp> {
    let mut ops = vec![
        FilledOp::AllocWith,
        FilledOp::Rewrite(0), // right after its fill: settles first in single-sync mode
        FilledOp::AllocBulkWith(4),
        FilledOp::AllocWith,
        FilledOp::Rewrite(2),
        FilledOp::RewriteAttached(1), // an in-place change durable with the next alloc_with
        FilledOp::AllocWith,
        FilledOp::AllocWith, // from here on its bytes are expected exactly
        FilledOp::Free(1),
        FilledOp::AllocWith, // reuses the freed page: its old bytes must never show
        FilledOp::AllocBulkWith(70),
    ];
    ops.extend([
        FilledOp::FreeEvery {
            start: 10,
            step: 2,
            count: 30,
        },
        FilledOp::AllocBulkWith(30), // 30 one-page runs: more than 56 / 2 data checks
        FilledOp::Rewrite(usize::MAX),
        FilledOp::AllocWith,
        FilledOp::RewriteAttached(3),
        FilledOp::RewriteAttached(4), // two attached pages, durable with the next free
        FilledOp::Free(0),
        FilledOp::AllocWith,
        FilledOp::AllocWith,
    ]);
    ops
}
