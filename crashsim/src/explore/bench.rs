//! A reusable crash image ([`Bench`]) and the sector patches one crash state applies to it.

use std::ops::Range;

use mappedpages::{CrashPoint, MappedPageError, Pager, SectorSize, SimStorage};

/// The volatile contents of the `kept` in-flight sectors of `point`, as patches of an image of
/// `len` bytes.
pub(super) fn sector_patches<'p>(
    point: &'p CrashPoint,
    sector_size: SectorSize,
    kept: &[u64],
    len: usize,
) -> Vec<(usize, &'p [u8])> {
    kept.iter()
        .filter_map(|&sector| {
            let start = (sector * sector_size.bytes()) as usize;
            let bytes = point.volatile_sector(sector_size, sector)?;
            (start < len).then(|| (start, &bytes[..bytes.len().min(len - start)]))
        })
        .collect()
}

/// Bytes a recovery wrote, per sync in order: (range, bytes after recovery).
pub(super) type Repairs = Vec<Vec<(Range<u64>, Vec<u8>)>>;

/// A reusable crash image: `pristine`, plus patches applied for one state and reverted after it,
/// so a crash state costs what it touches rather than the size of the file.
pub(super) struct Bench {
    pub(super) pristine: Vec<u8>,
    work: Vec<u8>,
}

impl Bench {
    /// A bench over the image `make` returns. It is called twice, for the pristine image and the
    /// working one, rather than the one copied: a crash image ([`CrashPoint::crash_image`]) is a
    /// zeroed allocation with only its nonzero blocks written, whose untouched pages take no
    /// memory, where a copy of it writes (and so takes) every page of the file.
    pub(super) fn new(make: impl Fn() -> Vec<u8>) -> Bench {
        Bench {
            work: make(),
            pristine: make(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.pristine.len()
    }

    /// True if `bytes` differ from what the image holds at `start` with `patches` applied.
    pub(super) fn differs_from_patched(
        &self,
        start: usize,
        bytes: &[u8],
        patches: &[(usize, &[u8])],
    ) -> bool {
        let mut before = self.pristine[start..start + bytes.len()].to_vec();
        for &(offset, patch) in patches {
            let (lo, hi) = (
                offset.max(start),
                (offset + patch.len()).min(start + bytes.len()),
            );
            if lo < hi {
                before[lo - start..hi - start].copy_from_slice(&patch[lo - offset..hi - offset]);
            }
        }
        before != bytes
    }

    /// Applies `patches`, opens the image (recovery included), calls `inspect`, and restores the
    /// pristine image. With `capture`, also returns what recovery wrote, per sync.
    pub(super) fn open_patched<const P: usize, R>(
        &mut self,
        patches: &[(usize, &[u8])],
        capture: bool,
        inspect: impl FnOnce(Result<&Pager<P, SimStorage>, &MappedPageError>) -> R,
    ) -> (R, Option<Repairs>) {
        let mut work = std::mem::take(&mut self.work);
        for &(offset, bytes) in patches {
            work[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        let storage = SimStorage::from_image_untracked(work);
        let (result, storage) = match Pager::<P, SimStorage>::try_open_in(storage) {
            Ok(pager) => {
                let result = inspect(Ok(&pager));
                (result, pager.into_storage())
            }
            Err((error, storage)) => (inspect(Err(&error)), storage),
        };
        let synced = storage.sync_log();
        let mut work = storage.into_image();
        assert_eq!(
            work.len(),
            self.pristine.len(),
            "recovery never changes the length"
        );
        let repairs = (capture && !synced.is_empty()).then(|| {
            synced
                .iter()
                .map(|ranges| {
                    ranges
                        .iter()
                        .map(|r| (r.clone(), work[r.start as usize..r.end as usize].to_vec()))
                        .collect()
                })
                .collect()
        });
        for &(offset, bytes) in patches {
            let range = offset..offset + bytes.len();
            work[range.clone()].copy_from_slice(&self.pristine[range]);
        }
        for range in synced.iter().flatten() {
            let range = range.start as usize..range.end as usize;
            work[range.clone()].copy_from_slice(&self.pristine[range]);
        }
        self.work = work;
        (result, repairs)
    }
}
