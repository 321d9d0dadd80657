//! Format 3's lazy group load (SPEC.md §4.1 step 3, §4.9): which materialized groups have their
//! bitmap in memory, and, for the others, whether the slot their table entry pins was checked.
//! Pure: the bytes come from the caller, who owns the file image.
//!
//! A group that is not loaded keeps its bits in its pinned slot page, which nothing writes while
//! the group is not loaded (a fold writes a group's other slot, and only a loaded group is folded),
//! so a reader may take its bits from the image once the slot was checked against its entry.
//! Checking is idempotent and writes only this status, so it runs through `&self` (an atomic per
//! group): `is_allocated`, `iter_allocated_pages` and `SharedPager` readers under the read lock.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::format::{
    Geometry, TableEntry, decode_group_slot, slot_bitmap_word, slot_checksum_field, slot_clear_bits,
};
use crate::mutants::{Mutant, active};

/// The bitmap is in memory (every group of formats 1 and 2, fresh groups, groups loaded since).
const LOADED: u8 = 0;
/// Not loaded; the pinned slot not read yet.
const UNCHECKED: u8 = 1;
/// Not loaded; the pinned slot matches its entry, so its bits may be read from the image.
const CHECKED: u8 = 2;
/// Not loaded; the pinned slot does not match its entry (`CorruptGroupSlot`).
const DAMAGED: u8 = 3;

/// A group whose pinned slot does not match its table entry: the slot was damaged after the
/// commit that pinned it completed (SPEC.md §4.9). Never replaced by the other slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DamagedGroup {
    pub(crate) group: u64,
    /// The pinned slot page.
    pub(crate) page: u64,
}

/// Which groups are loaded. Groups at or past `status.len()` are loaded.
#[derive(Debug, Default)]
pub(crate) struct GroupLoads {
    status: Vec<AtomicU8>,
    /// Pages in use in the groups not loaded (each `G −` its entry's free count): the part of
    /// the file's pages in use that the in-memory bitmap does not count.
    unloaded_used_pages: u64,
}

impl Clone for GroupLoads {
    fn clone(&self) -> GroupLoads {
        GroupLoads {
            status: self
                .status
                .iter()
                .map(|status| AtomicU8::new(status.load(Ordering::Relaxed)))
                .collect(),
            unloaded_used_pages: self.unloaded_used_pages,
        }
    }
}

impl GroupLoads {
    /// Every group of `entries` not loaded, their pinned slots unchecked.
    pub(crate) fn none_loaded(geometry: Geometry, entries: &[TableEntry]) -> GroupLoads {
        let unloaded_used_pages = entries
            .iter()
            .map(|entry| geometry.pages_per_group() - u64::from(entry.free_pages))
            .sum();
        GroupLoads {
            status: entries.iter().map(|_| AtomicU8::new(UNCHECKED)).collect(),
            unloaded_used_pages,
        }
    }

    /// Whether `group`'s bits are in the in-memory bitmap.
    #[inline]
    pub(crate) fn is_loaded(&self, group: u64) -> bool {
        self.status(group) == LOADED
    }

    fn status(&self, group: u64) -> u8 {
        usize::try_from(group)
            .ok()
            .and_then(|index| self.status.get(index))
            .map_or(LOADED, |status| status.load(Ordering::Relaxed))
    }

    /// Pages in use in groups not loaded.
    pub(crate) fn unloaded_used_pages(&self) -> u64 {
        self.unloaded_used_pages
    }

    /// Groups not loaded, in increasing order.
    pub(crate) fn unloaded(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.status.len() as u64).filter(|&group| !self.is_loaded(group))
    }

    /// Records that `group` (not loaded, its entry `entry`) is now loaded.
    pub(crate) fn mark_loaded(&mut self, geometry: Geometry, group: u64, entry: &TableEntry) {
        let status = self
            .status
            .get_mut(group as usize)
            .expect("a group not loaded has a status");
        assert!(*status.get_mut() != LOADED, "group {group} loaded twice");
        *status.get_mut() = LOADED;
        self.unloaded_used_pages -= geometry.pages_per_group() - u64::from(entry.free_pages);
    }

    /// The bitmap bytes of `group` (not loaded, its entry `entry`) from `image`, checked once.
    pub(crate) fn slot_bits<'a>(
        &self,
        image: &'a [u8],
        geometry: Geometry,
        group: u64,
        entry: &TableEntry,
    ) -> Result<&'a [u8], DamagedGroup> {
        let page = geometry.slot_page(group, entry.slot);
        let damaged = DamagedGroup { group, page };
        let bytes = slot_page_bytes(image, geometry, page).ok_or(damaged)?;
        match self.status(group) {
            CHECKED => bytes
                .get(crate::format::GROUP_HEADER_BYTES..)
                .ok_or(damaged),
            DAMAGED => Err(damaged),
            _ => {
                let checked = pinned_slot_bits(bytes, geometry, group, entry)
                    .or_else(|| other_slot_mutant(image, geometry, group, entry));
                let status = if checked.is_some() { CHECKED } else { DAMAGED };
                self.status[group as usize].store(status, Ordering::Relaxed);
                checked.ok_or(damaged)
            }
        }
    }
}

/// Page `page` of `image`, if it lies inside.
pub(crate) fn slot_page_bytes(image: &[u8], geometry: Geometry, page: u64) -> Option<&[u8]> {
    let start = usize::try_from(geometry.offset(page)).ok()?;
    image.get(start..start.checked_add(geometry.page_size() as usize)?)
}

/// The bitmap bytes of `page`, the slot of `group` that `entry` pins, if it is that slot: it
/// decodes as `group`'s, its generation and checksum field are the entry's, it has the entry's
/// free count of clear bits, and the group's internal pages are in use in it (SPEC.md §4.1
/// step 3). Pure.
pub(crate) fn pinned_slot_bits<'a>(
    page: &'a [u8],
    geometry: Geometry,
    group: u64,
    entry: &TableEntry,
) -> Option<&'a [u8]> {
    let (header, bits) = decode_group_slot(page, geometry, group).ok()?;
    if active(Mutant::SkipPinnedSlotCheck) {
        return Some(bits);
    }
    let words = (0..(geometry.pages_per_group() / 64) as usize).map(|i| slot_bitmap_word(bits, i));
    let pinned = header.generation == entry.generation
        && slot_checksum_field(page) == Some(entry.checksum)
        && slot_clear_bits(geometry, words) == u64::from(entry.free_pages);
    (pinned && internal_pages_in_use(geometry, group, bits)).then_some(bits)
}

/// Whether the bits of `group`'s internal pages (those before its first data page) are set.
fn internal_pages_in_use(geometry: Geometry, group: u64, bits: &[u8]) -> bool {
    let internal = geometry.first_data_page_of_group(group) - geometry.group_start(group);
    let full_words = (internal / 64) as usize;
    let rest = internal % 64;
    (0..full_words).all(|index| slot_bitmap_word(bits, index) == u64::MAX)
        && (rest == 0 || !slot_bitmap_word(bits, full_words) & ((1u64 << rest) - 1) == 0)
}

/// The `lazy-load-accepts-other-slot` mutant: on a mismatch, the other slot's bits if it
/// decodes (the older bitmap silently in use, which INV-8 forbids).
fn other_slot_mutant<'a>(
    image: &'a [u8],
    geometry: Geometry,
    group: u64,
    entry: &TableEntry,
) -> Option<&'a [u8]> {
    if !active(Mutant::LazyLoadAcceptsOtherSlot) {
        return None;
    }
    let page = slot_page_bytes(image, geometry, geometry.slot_page(group, 1 - entry.slot))?;
    decode_group_slot(page, geometry, group)
        .ok()
        .map(|(_, bits)| bits)
}

impl From<DamagedGroup> for crate::error::MappedPageError {
    fn from(damaged: DamagedGroup) -> Self {
        crate::error::MappedPageError::CorruptGroupSlot {
            group: damaged.group,
            page: damaged.page,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{GroupSlotHeader, encode_group_slot};

    const P: usize = 1024;

    fn geometry() -> Geometry {
        Geometry::with_group_table(P)
    }

    /// An image of group 0 (8 pages) whose slot 1 holds `words` at generation 5, and the entry
    /// that pins it.
    fn image_with(words: &[u64]) -> (Vec<u8>, TableEntry) {
        let geometry = geometry();
        let mut image = vec![0u8; 8 * P];
        let start = geometry.offset(geometry.slot_page(0, 1)) as usize;
        let header = GroupSlotHeader {
            generation: 5,
            group: 0,
        };
        let checksum = encode_group_slot(geometry, header, words, &mut image[start..start + P]);
        let entry = TableEntry {
            generation: 5,
            checksum,
            slot: 1,
            free_pages: slot_clear_bits(geometry, words.iter().copied()) as u32,
        };
        (image, entry)
    }

    /// Group 0's words: its internal pages 0–6 in use, and pages 9 and 200.
    fn words() -> Vec<u64> {
        let mut words = vec![0u64; (geometry().pages_per_group() / 64) as usize];
        words[0] = 0x7F | 1 << 9;
        words[200 / 64] |= 1 << (200 % 64);
        words
    }

    fn page(image: &[u8]) -> &[u8] {
        let start = geometry().offset(geometry().slot_page(0, 1)) as usize;
        &image[start..start + P]
    }

    /// The slot an entry pins is taken only when it is that slot: each field of the entry, a
    /// damaged byte, and a free internal page make it fail.
    #[test]
    fn the_pinned_slot_must_match_its_entry() {
        let (image, entry) = image_with(&words());
        let bits = pinned_slot_bits(page(&image), geometry(), 0, &entry).expect("the slot");
        assert_eq!(slot_bitmap_word(bits, 0), 0x7F | 1 << 9);
        let cases: [(&str, TableEntry); 3] = [
            (
                "generation",
                TableEntry {
                    generation: 4,
                    ..entry
                },
            ),
            (
                "checksum",
                TableEntry {
                    checksum: entry.checksum ^ 1,
                    ..entry
                },
            ),
            (
                "free count",
                TableEntry {
                    free_pages: entry.free_pages - 1,
                    ..entry
                },
            ),
        ];
        for (what, other) in cases {
            assert!(
                pinned_slot_bits(page(&image), geometry(), 0, &other).is_none(),
                "{what}"
            );
        }
        assert!(
            pinned_slot_bits(page(&image), geometry(), 1, &entry).is_none(),
            "group"
        );
        let mut damaged = image.clone();
        let start = geometry().offset(geometry().slot_page(0, 1)) as usize;
        damaged[start + 100] ^= 1;
        assert!(
            pinned_slot_bits(page(&damaged), geometry(), 0, &entry).is_none(),
            "crc"
        );
        // Internal page 6 (table page 0's second slot) free: not a slot of this file.
        let mut words = words();
        words[0] &= !(1 << 6);
        let (image, entry) = image_with(&words);
        assert!(
            pinned_slot_bits(page(&image), geometry(), 0, &entry).is_none(),
            "internal"
        );
        assert!(!internal_pages_in_use(geometry(), 0, &[0u8; 992]));
        let mut bits = [0u8; 992];
        bits[0] = 0x7F;
        assert!(internal_pages_in_use(geometry(), 0, &bits));
        // Group 1922 holds extent 5 (32 table pages, 64 slot pages) after its own two slots:
        // 66 internal pages, a whole word and two bits.
        let group = 1922;
        assert_eq!(
            geometry().first_data_page_of_group(group) - geometry().group_start(group),
            66
        );
        let mut bits = [0u8; 992];
        bits[..8].fill(0xFF);
        bits[8] = 0b11;
        assert!(internal_pages_in_use(geometry(), group, &bits));
        bits[3] = 0xEF;
        assert!(!internal_pages_in_use(geometry(), group, &bits));
        bits[3] = 0xFF;
        bits[8] = 0b01;
        assert!(!internal_pages_in_use(geometry(), group, &bits));
    }

    /// Status and counts: nothing loaded at first (groups past the table are), a slot checked
    /// once and then read without a check, a damaged one remembered, a load taking the group's
    /// pages out of the count of groups not loaded; a clone keeps every status.
    #[test]
    fn a_group_is_checked_once_and_loaded_once() {
        let (image, entry) = image_with(&words());
        let used = geometry().pages_per_group() - u64::from(entry.free_pages);
        assert_eq!(used, 9);
        let other = TableEntry {
            free_pages: 100,
            ..entry
        };
        let mut loads = GroupLoads::none_loaded(geometry(), &[entry, other]);
        assert_eq!(
            loads.unloaded_used_pages(),
            used + geometry().pages_per_group() - 100
        );
        assert!(!loads.is_loaded(0) && !loads.is_loaded(1) && loads.is_loaded(2));
        assert_eq!(loads.unloaded().collect::<Vec<_>>(), [0, 1]);

        assert!(loads.slot_bits(&image, geometry(), 0, &entry).is_ok());
        // Checked: the bits are read in place, without a second check.
        let mut changed = image.clone();
        let start = geometry().offset(geometry().slot_page(0, 1)) as usize;
        changed[start + 100] ^= 1;
        assert!(loads.slot_bits(&changed, geometry(), 0, &entry).is_ok());
        // Group 1's pinned slot holds zeros: damaged, and remembered as damaged.
        let damaged = DamagedGroup {
            group: 1,
            page: geometry().slot_page(1, 1),
        };
        if !cfg!(miri) {
            // An image reaching group 1 (8 MiB: left out under Miri).
            let mut longer = image.clone();
            longer.resize(
                geometry().offset(geometry().slot_page(1, 1) + 1) as usize,
                0,
            );
            assert_eq!(
                loads.slot_bits(&longer, geometry(), 1, &other),
                Err(damaged)
            );
            assert_eq!(loads.status(1), DAMAGED);
            // Remembered: the slot is not read again, even if it now matched its entry.
            let start = geometry().offset(geometry().slot_page(1, 1)) as usize;
            let header = GroupSlotHeader {
                generation: 5,
                group: 1,
            };
            let mut group_words = vec![0u64; (geometry().pages_per_group() / 64) as usize];
            group_words[0] = 0b11;
            let checksum =
                encode_group_slot(geometry(), header, &group_words, &mut longer[start..]);
            let healed = TableEntry {
                checksum,
                free_pages: geometry().pages_per_group() as u32 - 2,
                ..other
            };
            assert!(pinned_slot_bits(&longer[start..], geometry(), 1, &healed).is_some());
            assert_eq!(
                loads.slot_bits(&longer, geometry(), 1, &healed),
                Err(damaged)
            );
        }
        assert_eq!(loads.slot_bits(&image, geometry(), 1, &other), Err(damaged));
        let clone = loads.clone();
        assert_eq!(clone.status(0), CHECKED);
        assert_eq!(clone.status(1), loads.status(1));
        assert_eq!(clone.unloaded_used_pages(), loads.unloaded_used_pages());

        loads.mark_loaded(geometry(), 0, &entry);
        assert!(loads.is_loaded(0));
        assert_eq!(loads.unloaded().collect::<Vec<_>>(), [1]);
        assert_eq!(
            loads.unloaded_used_pages(),
            geometry().pages_per_group() - 100
        );
        assert_eq!(GroupLoads::default().unloaded().count(), 0);
    }
}
