//! A storage whose failed growth leaves it without its bytes, for the tests of what a pager does
//! then (`#[path = "common/loses_bytes.rs"] mod loses_bytes;` in each test file that uses it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mappedpages::{SimStorage, Storage};

/// A storage whose failed growth leaves it without its bytes (as a `MmapStorage` on Windows whose
/// old view could not be mapped again after the file was cut back): `bytes` is empty while
/// `len_bytes` is not. Growth fails while `fail_growth` is set.
pub struct LosesBytesOnFailedGrowth {
    pub inner: SimStorage,
    pub fail_growth: Arc<AtomicBool>,
    pub lost: bool,
}

impl LosesBytesOnFailedGrowth {
    /// A new, empty storage and the switch that makes its growths fail.
    pub fn new() -> (LosesBytesOnFailedGrowth, Arc<AtomicBool>) {
        let fail_growth = Arc::new(AtomicBool::new(false));
        let storage = LosesBytesOnFailedGrowth {
            inner: SimStorage::new(),
            fail_growth: fail_growth.clone(),
            lost: false,
        };
        (storage, fail_growth)
    }
}

impl Storage for LosesBytesOnFailedGrowth {
    fn len_bytes(&self) -> u64 {
        self.inner.len_bytes()
    }
    fn grow(&mut self, new_len_bytes: u64) -> std::io::Result<()> {
        if self.fail_growth.load(Ordering::SeqCst) {
            self.lost = true;
            return Err(std::io::Error::other(
                "injected: the old view could not be mapped again",
            ));
        }
        self.inner.grow(new_len_bytes)
    }
    fn bytes(&self) -> &[u8] {
        if self.lost { &[] } else { self.inner.bytes() }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        if self.lost {
            &mut []
        } else {
            self.inner.bytes_mut()
        }
    }
    fn sync_ranges(&mut self, ranges: &[std::ops::Range<u64>]) -> std::io::Result<()> {
        self.inner.sync_ranges(ranges)
    }
    fn sync_all(&mut self) -> std::io::Result<()> {
        self.inner.sync_all()
    }
    fn reserve(&mut self, ranges: &[std::ops::Range<u64>]) -> std::io::Result<()> {
        self.inner.reserve(ranges)
    }
    fn shrink(&mut self, new_len_bytes: u64) -> std::io::Result<()> {
        self.inner.shrink(new_len_bytes)
    }
}
