//! What readers of a [`SharedPager`](super::SharedPager) see while a group commit's barriers
//! run with the pager lock released (SPEC.md §3.10): the durable state, not the staged one.
//!
//! The leader stages a group into the pager's memory (the bitmap, the directory) before its
//! barrier, so while the barrier runs memory already says what the group will have done. A
//! [`Flight`] lists what the group changed, and the readers' calls (`page`, `protected_page`)
//! answer for those pages as the durable state does: a page the group allocates is not
//! allocated yet, a page it frees still is, a protected page it writes still has its committed
//! copy. Everything else reads memory as usual: the group changed nothing else. Calls that see
//! the whole pager (`read`, `try_read`) and writes to a page the group changes wait until the
//! group is published instead.

use std::collections::HashMap;

use crate::error::MappedPageError;
use crate::pager::Pager;
use crate::storage::Storage;

/// The committed copy of a protected page before the group in flight changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CommittedCopy {
    pub(super) page: u64,
    pub(super) checksum: u32,
}

/// What the group in flight changes, as its leader staged it.
#[derive(Debug, Default)]
pub(super) struct Flight {
    /// Regular pages the group allocates or frees, sorted: their durable state is the opposite
    /// of what the bitmap in memory says.
    regular: Vec<u64>,
    /// Protected pages the group allocates, frees or writes, sorted by id, each with its
    /// committed copy before the group (`None`: the group allocates it).
    protected: Vec<(u64, Option<CommittedCopy>)>,
}

/// A [`Flight`] being built by a leader while it stages its group.
#[derive(Debug, Default)]
pub(super) struct FlightBuilder {
    regular: Vec<u64>,
    protected: HashMap<u64, Option<CommittedCopy>>,
}

impl FlightBuilder {
    /// Regular pages the group allocates or frees.
    pub(super) fn regular(&mut self, pages: impl IntoIterator<Item = u64>) {
        self.regular.extend(pages);
    }

    /// A protected page the group allocates.
    pub(super) fn protected_allocated(&mut self, id: u64) {
        self.protected.entry(id).or_insert(None);
    }

    /// Protected pages the group freed or wrote, with their committed copies before it (from
    /// [`committed_copies`], taken before the operation was staged). A page the group touched
    /// before keeps its first record.
    pub(super) fn protected_changed(&mut self, copies: Vec<(u64, CommittedCopy)>) {
        for (id, copy) in copies {
            self.protected.entry(id).or_insert(Some(copy));
        }
    }

    pub(super) fn build(self) -> Flight {
        let mut regular = self.regular;
        regular.sort_unstable();
        regular.dedup();
        let mut protected: Vec<_> = self.protected.into_iter().collect();
        protected.sort_unstable_by_key(|(id, _)| *id);
        Flight { regular, protected }
    }
}

/// The committed copies of the protected pages `ids` that have one (an id without one fails its
/// operation's checks, which then changes nothing).
pub(super) fn committed_copies<const PAGE_SIZE: usize, S: Storage>(
    pager: &Pager<PAGE_SIZE, S>,
    ids: impl IntoIterator<Item = u64>,
) -> Vec<(u64, CommittedCopy)> {
    let directory = pager.directory();
    ids.into_iter()
        .filter_map(|id| {
            let entry = directory.entry(id)?;
            let copy = CommittedCopy {
                page: entry.current_page(),
                checksum: entry.content_checksum,
            };
            Some((id, copy))
        })
        .collect()
}

/// How a reader answers for one regular page while a group is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RegularView {
    /// The group does not change it: memory is the durable state.
    Unchanged,
    /// The group allocates it: not allocated yet.
    NotYetAllocated,
    /// The group frees it: still allocated (it was, when the group staged the free).
    StillAllocated,
}

/// How a reader answers for one protected page while a group is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProtectedView {
    Unchanged,
    /// The group allocates it.
    NotYetAllocated,
    /// The group frees or writes it: its committed copy is still this one.
    Committed(CommittedCopy),
}

impl Flight {
    /// `page`'s durable state, given whether memory says it is allocated.
    pub(super) fn regular(&self, page: u64, allocated_in_memory: bool) -> RegularView {
        if self.regular.binary_search(&page).is_err() {
            return RegularView::Unchanged;
        }
        if allocated_in_memory {
            RegularView::NotYetAllocated
        } else {
            RegularView::StillAllocated
        }
    }

    pub(super) fn protected(&self, id: u64) -> ProtectedView {
        match self.protected.binary_search_by_key(&id, |(id, _)| *id) {
            Err(_) => ProtectedView::Unchanged,
            Ok(at) => match self.protected.get(at).and_then(|(_, copy)| *copy) {
                None => ProtectedView::NotYetAllocated,
                Some(copy) => ProtectedView::Committed(copy),
            },
        }
    }

    /// Whether the group changes regular page `page` (a write to it waits for the group).
    pub(super) fn changes_regular(&self, page: u64) -> bool {
        self.regular.binary_search(&page).is_ok()
    }
}

/// A page the group in flight allocates, as the readers' error says (it is not allocated yet).
pub(super) fn not_yet_allocated(page: u64) -> MappedPageError {
    MappedPageError::NotAllocated { page }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight() -> Flight {
        let mut builder = FlightBuilder::default();
        builder.regular([40, 12, 40]);
        builder.protected_allocated(7);
        builder.protected.insert(
            3,
            Some(CommittedCopy {
                page: 90,
                checksum: 5,
            }),
        );
        builder.build()
    }

    #[test]
    fn a_page_the_group_allocates_is_not_allocated_yet_and_one_it_frees_still_is() {
        let flight = flight();
        let table = [
            (12, true, RegularView::NotYetAllocated),
            (12, false, RegularView::StillAllocated),
            (40, true, RegularView::NotYetAllocated),
            (13, true, RegularView::Unchanged),
            (13, false, RegularView::Unchanged),
        ];
        for (page, in_memory, view) in table {
            assert_eq!(flight.regular(page, in_memory), view, "page {page}");
        }
        assert!(flight.changes_regular(40) && !flight.changes_regular(41));
    }

    #[test]
    fn a_protected_page_keeps_its_committed_copy_until_the_group_is_published() {
        let flight = flight();
        assert_eq!(flight.protected(7), ProtectedView::NotYetAllocated);
        assert_eq!(
            flight.protected(3),
            ProtectedView::Committed(CommittedCopy {
                page: 90,
                checksum: 5
            })
        );
        assert_eq!(flight.protected(4), ProtectedView::Unchanged);
    }

    #[test]
    fn the_first_record_of_a_protected_page_wins() {
        let mut builder = FlightBuilder::default();
        builder.protected_allocated(9);
        let copy = CommittedCopy {
            page: 1,
            checksum: 2,
        };
        builder.protected_changed(vec![(9, copy), (8, copy)]);
        builder.protected_changed(vec![(8, CommittedCopy { page: 5, ..copy })]);
        let flight = builder.build();
        assert_eq!(flight.protected(9), ProtectedView::NotYetAllocated);
        assert_eq!(flight.protected(8), ProtectedView::Committed(copy));
    }
}
