//! The judge every phase uses: open an image, check it is well-formed and allowed, and turn a
//! panic into an INV-9 finding.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mappedpages::format::Geometry;
use mappedpages::{MappedPageError, Pager, SimStorage, Storage};

use crate::{Allowed, Finding, Invariant, Matched, Recovered, Scenario};

/// The models allowed at a crash just before sync `sync`, given a run's acknowledgements
/// ([`Recorder::acks`](crate::Recorder::acks): sync count at the time, model): the last one acknowledged at or before
/// that sync (`None` before the create completed, when "no file" is also allowed) and the one
/// acknowledged next, in flight at the crash (`None` after the last).
pub fn allowed_at<M>(acks: &[(u64, M)], sync: u64) -> (Option<&M>, Option<&M>) {
    let acknowledged = acks
        .iter()
        .rev()
        .find(|(count, _)| *count <= sync)
        .map(|(_, m)| m);
    let in_flight = acks.iter().find(|(count, _)| *count > sync).map(|(_, m)| m);
    (acknowledged, in_flight)
}

/// Judges one crash image exactly as the explorer judges every crash state it recovers: the
/// image opens (INV-1; before the create completed, "no file" is allowed too), the recovered
/// pager is well-formed (INV-5, `check_well_formed`), and [`Scenario::check`] accepts it against
/// the acknowledged and in-flight models (INV-2/3/4, or whatever the scenario checks); a panic
/// anywhere in there is an INV-9 finding. Pass `acknowledged` and `in_flight` as [`allowed_at`]
/// gives them for the crash point (`acknowledged` is `None` before the create completed; then
/// `in_flight` is the created file's model). Returns the model the recovered state matched, or
/// `None` if the image holds no file (allowed only before the create completed).
///
/// For a crash state of a workload's own run, [`replay`](crate::replay) of its [`Case`](crate::Case) gives the same verdict
/// (and for a `RecoveryCrash`, a `Chain`, a failure or media damage, the checks that go with
/// them); `check_image` judges an image from anywhere (a fuzzer's crash, a file from the field)
/// without rerunning the workload.
pub fn check_image<const P: usize, W: Scenario<P>>(
    scenario: &W,
    image: Vec<u8>,
    acknowledged: Option<&W::Model>,
    in_flight: Option<&W::Model>,
) -> Result<Option<W::Model>, Finding> {
    guarded(|| {
        open_and_judge(scenario, image, acknowledged, in_flight)
            .map(|recovered| recovered.map(|(_, model)| model))
    })
}

/// Runs `f`, turning a panic into an INV-9 finding.
pub(super) fn guarded<T>(f: impl FnOnce() -> Result<T, Finding>) -> Result<T, Finding> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => Err(crate::panic_finding(panic, "panic")),
    }
}

/// Judges what opening a crash image gave. `acknowledged` is `None` before the create
/// completed, when "no file" is also allowed. Returns the model the state matched (`None`:
/// no file).
pub(super) fn judge<const P: usize, W: Scenario<P>>(
    scenario: &W,
    opened: Result<&Pager<P, SimStorage>, &MappedPageError>,
    acknowledged: Option<&W::Model>,
    in_flight: Option<&W::Model>,
) -> Result<Option<W::Model>, Finding> {
    judge_matched(scenario, opened, acknowledged, in_flight)
        .map(|recovered| recovered.map(|(model, _)| model))
}

/// [`judge`], also saying which of the two models the state matched.
pub(super) fn judge_matched<const P: usize, W: Scenario<P>>(
    scenario: &W,
    opened: Result<&Pager<P, SimStorage>, &MappedPageError>,
    acknowledged: Option<&W::Model>,
    in_flight: Option<&W::Model>,
) -> Result<Option<(W::Model, Matched)>, Finding> {
    let pager = match opened {
        Ok(pager) => pager,
        Err(MappedPageError::NotAMappedPagesFile | MappedPageError::FileTooSmall { .. })
            if acknowledged.is_none() =>
        {
            return Ok(None);
        }
        Err(error) => {
            return Err(Finding::new(
                Invariant::Opens,
                format!("crash image does not open: {error}"),
            ));
        }
    };
    check_well_formed(pager)?;
    let (acknowledged, in_flight) = match (acknowledged, in_flight) {
        (Some(acknowledged), in_flight) => (acknowledged, in_flight),
        // Before the create completed, the created file's model is the one in flight.
        (None, Some(created)) => (created, None),
        // Not from a `Recorder` (whose first acknowledgement is the created file's model).
        (None, None) => {
            return Err(Finding::new(
                Invariant::Atomic,
                "the image opens, but no state is allowed (nothing acknowledged or in flight)",
            ));
        }
    };
    let matched = scenario.check(
        &Recovered::new(pager, scenario.commit_mode()),
        &Allowed {
            acknowledged,
            in_flight,
        },
    )?;
    match matched {
        Matched::Acknowledged => Ok(Some((acknowledged.clone(), matched))),
        Matched::InFlight => in_flight
            .map(|m| Some((m.clone(), matched)))
            .ok_or_else(|| {
                Finding::new(
                    Invariant::Atomic,
                    "Scenario::check matched the in-flight model, but none was in flight",
                )
            }),
    }
}

/// Opens `image` (a copy of its own) and judges it; returns the pager for further use.
pub(super) fn open_and_judge<const P: usize, W: Scenario<P>>(
    scenario: &W,
    image: Vec<u8>,
    acknowledged: Option<&W::Model>,
    in_flight: Option<&W::Model>,
) -> Result<Option<RecoveredState<P, W::Model>>, Finding> {
    match Pager::<P, SimStorage>::open_in(SimStorage::from_image(image)) {
        Ok(pager) => {
            let model = judge(scenario, Ok(&pager), acknowledged, in_flight)?;
            Ok(model.map(|model| (pager, model)))
        }
        Err(error) => judge(scenario, Err(&error), acknowledged, in_flight).map(|_| None),
    }
}

/// INV-5 at the pager level: no internal page listed, counts agree, the file holds every page.
pub(super) fn check_well_formed<const P: usize>(
    pager: &Pager<P, SimStorage>,
) -> Result<(), Finding> {
    // Format 3 opens without reading most groups' bitmaps (SPEC.md §4.9): a crash never damages
    // a slot the table pins, so every group must load.
    if let Err(error) = pager.check_bitmaps() {
        return Err(Finding::new(
            Invariant::Opens,
            format!("a group's bitmap does not load after open: {error}"),
        ));
    }
    let geometry = Geometry::with_group_table(P);
    let mut count = 0u64;
    for id in pager.iter_allocated_pages() {
        if geometry.is_internal(id.raw()) || id.raw() >= pager.page_count() {
            return Err(Finding::new(
                Invariant::WellFormed,
                format!("page {} listed as allocated", id.raw()),
            ));
        }
        count += 1;
    }
    if count != pager.allocated_page_count() {
        return Err(Finding::new(
            Invariant::WellFormed,
            format!(
                "{count} pages listed, {} counted",
                pager.allocated_page_count()
            ),
        ));
    }
    if pager.storage().len_bytes() < pager.page_count() * P as u64 {
        return Err(Finding::new(
            Invariant::WellFormed,
            "file shorter than its page count",
        ));
    }
    Ok(())
}

/// A recovered pager and the model its state matched.
pub(super) type RecoveredState<const P: usize, M> = (Pager<P, SimStorage>, M);
