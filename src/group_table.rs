//! Format 3's group table in memory (docs/scale-design.md §2–§3): per materialized group the
//! entry that pins its current slot, per table page its current slot, and the table digest `T`.
//! Pure: what a commit writes is planned here ([`GroupTable::plan`]) and taken in once durable
//! ([`GroupTable::committed`]); the commit does the writing.

use crate::format::{Geometry, TableEntry, table_digest_term};

/// The current slot of one table page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TablePageSlot {
    /// Which of its two slot pages (0 or 1).
    pub(crate) slot: u8,
    /// The generation of the commit that wrote it.
    pub(crate) generation: u64,
    /// Its checksum field.
    pub(crate) checksum: u32,
}

impl TablePageSlot {
    fn term(self, table_page: u64) -> u64 {
        table_digest_term(table_page, self.generation, self.checksum)
    }
}

/// One table page a commit writes: its index, the slot it goes to, and every entry it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TablePageWrite {
    pub(crate) table_page: u64,
    pub(crate) slot: u8,
    pub(crate) entries: Vec<TableEntry>,
}

/// The group table as the last commit left it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupTable {
    /// The entry of every materialized group, in group order.
    entries: Vec<TableEntry>,
    /// The current slot of every table page, `⌈entries / E_t⌉` of them.
    pages: Vec<TablePageSlot>,
    /// XOR of the table pages' digest terms, as the metadata records it.
    digest: u64,
}

impl GroupTable {
    /// The table recovery loaded: `entries` per materialized group, `pages` per table page (the
    /// caller checked their digest against the metadata's).
    pub(crate) fn recovered(
        geometry: Geometry,
        entries: Vec<TableEntry>,
        pages: Vec<TablePageSlot>,
    ) -> GroupTable {
        assert_eq!(
            pages.len() as u64,
            geometry.table_page_count(entries.len() as u64),
            "one table page per E_t groups"
        );
        let digest = digest_of(&pages);
        GroupTable {
            entries,
            pages,
            digest,
        }
    }

    /// The entry of materialized `group`.
    #[inline]
    pub(crate) fn entry(&self, group: u64) -> Option<&TableEntry> {
        self.entries.get(usize::try_from(group).ok()?)
    }

    /// The table digest `T`.
    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    /// The current slot of table page `table_page`, if the table has that page.
    pub(crate) fn page_slot(&self, table_page: u64) -> Option<u8> {
        let index = usize::try_from(table_page).ok()?;
        Some(self.pages.get(index)?.slot)
    }

    /// The table pages a commit writes when `updates` (group, new entry; increasing groups, each
    /// a materialized group or the next one to materialize) are its folds: every table page
    /// holding one of them, into its inactive slot (slot 0 for a new table page), with all its
    /// entries. The digest after the writes, once their checksums are known, is
    /// [`digest_after`](Self::digest_after).
    pub(crate) fn plan(
        &self,
        geometry: Geometry,
        updates: &[(u64, TableEntry)],
    ) -> Vec<TablePageWrite> {
        assert!(
            updates.windows(2).all(|w| w[0].0 < w[1].0),
            "table updates must be sorted and distinct"
        );
        let per_page = geometry.table_entries_per_page();
        let mut writes: Vec<TablePageWrite> = Vec::new();
        let mut next_new = self.entries.len() as u64;
        for &(group, entry) in updates {
            if group >= self.entries.len() as u64 {
                assert_eq!(group, next_new, "groups materialize in order");
                next_new += 1;
            }
            let table_page = group / per_page;
            if writes.last().is_none_or(|w| w.table_page != table_page) {
                writes.push(self.page_write(geometry, table_page));
            }
            let write = writes.last_mut().expect("pushed above");
            let index = (group - table_page * per_page) as usize;
            if index < write.entries.len() {
                write.entries[index] = entry;
            } else {
                assert_eq!(index, write.entries.len(), "groups materialize in order");
                write.entries.push(entry);
            }
        }
        writes
    }

    /// The write of `table_page` before any update: its entries as they are, its inactive slot.
    fn page_write(&self, geometry: Geometry, table_page: u64) -> TablePageWrite {
        let per_page = geometry.table_entries_per_page() as usize;
        let first = table_page as usize * per_page;
        let entries = self
            .entries
            .get(first..(first + per_page).min(self.entries.len()))
            .unwrap_or_default()
            .to_vec();
        let slot = self
            .pages
            .get(table_page as usize)
            .map_or(0, |current| 1 - current.slot);
        TablePageWrite {
            table_page,
            slot,
            entries,
        }
    }

    /// The digest `T` after `written` (each write's table page and the slot it now has).
    pub(crate) fn digest_after(&self, written: &[(u64, TablePageSlot)]) -> u64 {
        written
            .iter()
            .fold(self.digest, |digest, &(table_page, slot)| {
                let old = self
                    .pages
                    .get(table_page as usize)
                    .map_or(0, |current| current.term(table_page));
                digest ^ old ^ slot.term(table_page)
            })
    }

    /// Takes a durable commit's table writes: `updates` as given to [`plan`](Self::plan) and the
    /// slots the written pages now have.
    pub(crate) fn committed(
        &mut self,
        updates: &[(u64, TableEntry)],
        written: &[(u64, TablePageSlot)],
    ) {
        self.digest = self.digest_after(written);
        for &(group, entry) in updates {
            let index = group as usize;
            if index < self.entries.len() {
                self.entries[index] = entry;
            } else {
                assert_eq!(index, self.entries.len(), "groups materialize in order");
                self.entries.push(entry);
            }
        }
        for &(table_page, slot) in written {
            let index = table_page as usize;
            if index < self.pages.len() {
                self.pages[index] = slot;
            } else {
                assert_eq!(index, self.pages.len(), "table pages appear in order");
                self.pages.push(slot);
            }
        }
        // A pass over every table page: O(file) per commit, so debug builds only (in release,
        // the caller checks the digest against the one the commit recorded).
        debug_assert_eq!(
            self.digest,
            digest_of(&self.pages),
            "the digest follows the pages"
        );
    }
}

fn digest_of(pages: &[TablePageSlot]) -> u64 {
    pages
        .iter()
        .enumerate()
        .fold(0, |digest, (t, slot)| digest ^ slot.term(t as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(generation: u64) -> TableEntry {
        TableEntry {
            generation,
            checksum: generation as u32 * 7,
            slot: (generation % 2) as u8,
            free_pages: 100,
        }
    }

    /// Distinct entries (a table page's position in the table shows in its entries), and a
    /// table page written twice, so that its current slot is 1 before the third write.
    #[test]
    fn plan_keeps_each_page_s_own_entries_and_alternates_its_slots() {
        let g = Geometry::with_group_table(1024);
        let mut table = GroupTable::default();
        let distinct = |group: u64, generation: u64| TableEntry {
            generation,
            checksum: (group as u32) << 8 | generation as u32,
            slot: 0,
            free_pages: group as u32,
        };
        let first: Vec<(u64, TableEntry)> = (0..130).map(|k| (k, distinct(k, 1))).collect();
        let writes = table.plan(g, &first);
        assert_eq!(
            writes.iter().map(|w| w.table_page).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let slot = |slot, generation, checksum| TablePageSlot {
            slot,
            generation,
            checksum,
        };
        table.committed(
            &first,
            &[(0, slot(0, 1, 1)), (1, slot(0, 1, 2)), (2, slot(0, 1, 3))],
        );
        for (generation, expected_slot) in [(2u64, 1u8), (3, 0)] {
            let update = [(70, distinct(70, generation))];
            let writes = table.plan(g, &update);
            assert_eq!(writes.len(), 1);
            let write = &writes[0];
            assert_eq!((write.table_page, write.slot), (1, expected_slot));
            // Groups 62..124, each with its own entry; group 70's the new one.
            assert_eq!(write.entries.len(), 62);
            for (group, entry) in (62..).zip(&write.entries) {
                let expected = if group == 70 {
                    distinct(70, generation)
                } else {
                    distinct(group, 1)
                };
                assert_eq!(*entry, expected, "group {group}");
            }
            table.committed(&update, &[(1, slot(expected_slot, generation, 9))]);
            assert_eq!(table.page_slot(1), Some(expected_slot));
        }
        assert_eq!(table.page_slot(3), None);
        let recovered = GroupTable::recovered(g, table.entries.clone(), table.pages.clone());
        assert_eq!(recovered, table);
    }

    #[test]
    fn plan_touches_each_table_page_of_an_update_once() {
        let g = Geometry::with_group_table(1024);
        let mut table = GroupTable::default();
        // The first commit materializes 70 groups: table pages 0 (62 entries) and 1 (8).
        let updates: Vec<(u64, TableEntry)> = (0..70).map(|group| (group, entry(1))).collect();
        let writes = table.plan(g, &updates);
        assert_eq!(writes.len(), 2);
        assert_eq!(
            (
                writes[0].table_page,
                writes[0].slot,
                writes[0].entries.len()
            ),
            (0, 0, 62)
        );
        assert_eq!(
            (
                writes[1].table_page,
                writes[1].slot,
                writes[1].entries.len()
            ),
            (1, 0, 8)
        );
        let slot = |slot, checksum| TablePageSlot {
            slot,
            generation: 1,
            checksum,
        };
        let written = [(0, slot(0, 11)), (1, slot(0, 12))];
        table.committed(&updates, &written);
        assert_eq!(
            table.digest(),
            table_digest_term(0, 1, 11) ^ table_digest_term(1, 1, 12)
        );
        // A fold of group 63 rewrites table page 1 into slot 1, with its 8 entries.
        let writes = table.plan(g, &[(63, entry(2))]);
        assert_eq!(writes.len(), 1);
        assert_eq!((writes[0].table_page, writes[0].slot), (1, 1));
        assert_eq!(writes[0].entries[1], entry(2));
        assert_eq!(writes[0].entries[0], entry(1));
        let new_slot = TablePageSlot {
            slot: 1,
            generation: 2,
            checksum: 99,
        };
        let digest = table.digest_after(&[(1, new_slot)]);
        assert_eq!(
            digest,
            table_digest_term(0, 1, 11) ^ table_digest_term(1, 2, 99)
        );
        table.committed(&[(63, entry(2))], &[(1, new_slot)]);
        assert_eq!(table.digest(), digest);
        assert_eq!(table.entries[63], entry(2));
    }
}
