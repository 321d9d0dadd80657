//! The failed-growth phase: each growth fails in turn (INV-7).

use mappedpages::{MappedPageError, Pager, SimStorage};

use super::Explorer;
use super::case::Case;
use super::judge::{guarded, open_and_judge};
use crate::{Finding, Invariant, Scenario};

impl<const P: usize, W: Scenario<P>> Explorer<'_, P, W> {
    pub(super) fn failed_growth(&self, order: usize, growth: u64) {
        let case = Case::FailedGrowth { growth };
        if !self.begin_state(&case) {
            return;
        }
        let result = guarded(|| {
            let mut storage = SimStorage::new();
            storage.fail_grow_at(growth);
            if growth == 0 {
                // The create's own growth: create fails and nothing exists.
                return match Pager::<P, SimStorage>::create_in(storage) {
                    Err(MappedPageError::Io { .. }) => Ok(()),
                    Err(other) => Err(Finding::new(
                        Invariant::Failures,
                        format!("failed create growth gave {other}"),
                    )),
                    Ok(_) => Err(Finding::new(
                        Invariant::Failures,
                        "create succeeded although its growth failed",
                    )),
                };
            }
            let (pager, rec) = self.clean_run(storage)?;
            let last = &rec.acks.last().expect("initial ack").1;
            open_and_judge(
                self.scenario,
                pager.storage().durable_image(),
                Some(last),
                None,
            )
            .map(|_| ())
            .map_err(|f| {
                Finding::new(
                    Invariant::Failures,
                    format!("after failed growth {growth}: {f}"),
                )
            })
        });
        if let Err(finding) = result {
            self.report(order, case, finding);
        }
    }
}
