//! tinykv: an append-only log of records on a [`mappedpages`] pager, small enough to read in one
//! sitting, and crash-tested with crashsim (`tests/crash.rs`).
//!
//! Each record lives in a regular page of its own: bytes `0..4` its length (little-endian `u32`),
//! then the record. A protected page, the root, lists the records in order: bytes `0..8` the
//! magic `TINYKV01`, `8..16` the count `n`, then `n` page ids (`u64` each). Appending is:
//!
//! 1. `alloc` a page and write the record into it;
//! 2. `sync_page` it: the record is durable;
//! 3. publish it: stage the root with one more id and `commit` (atomic: the root reads as before
//!    or after, whatever the crash).
//!
//! A root of zeros (a new protected page) is an empty log. A crash between 1 and 3 leaves an allocated page no root names; [`Log::open`] frees such
//! leaked pages (its repair). With the `planted-bug` feature, steps 2 and 3 are swapped: the root
//! can name a record whose bytes never reached the disk, which the crash test must catch.
//!
//! ```
//! use mappedpages::{Pager, SimStorage};
//! use tinykv::Log;
//!
//! let pager = Pager::<1024, SimStorage>::create_in(SimStorage::new()).unwrap();
//! let mut log = Log::open(pager).map_err(|(error, _)| error).unwrap();
//! log.append(b"hello").unwrap();
//! log.append(b"world").unwrap();
//! assert_eq!(log.records().unwrap(), [b"hello".to_vec(), b"world".to_vec()]);
//! ```

use std::fmt;

use mappedpages::{MappedPageError, PageId, Pager, ProtectedPageId, Storage};

/// The root's first bytes.
const MAGIC: &[u8; 8] = b"TINYKV01";
/// Bytes before the root's list of ids: magic and count.
const ROOT_HEADER_BYTES: usize = 16;
/// Bytes before a record: its length.
const RECORD_HEADER_BYTES: usize = 4;

/// What can go wrong.
#[derive(Debug)]
pub enum Error {
    /// The pager refused (a failed sync poisons it; see mappedpages' docs).
    Pager(MappedPageError),
    /// A record longer than a page holds (`max` bytes).
    TooLong {
        /// The record's length.
        len: usize,
        /// The most a page holds.
        max: usize,
    },
    /// The root holds as many records as it can.
    Full,
    /// The file is not a tinykv log, or its root or a record is damaged.
    Corrupt(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Pager(error) => write!(f, "{error}"),
            Error::TooLong { len, max } => {
                write!(
                    f,
                    "a record of {len} bytes does not fit a page ({max} at most)"
                )
            }
            Error::Full => f.write_str("the root lists as many records as it can hold"),
            Error::Corrupt(what) => write!(f, "corrupt log: {what}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<MappedPageError> for Error {
    fn from(error: MappedPageError) -> Error {
        Error::Pager(error)
    }
}

/// An append-only log of records; owns its pager.
#[derive(Debug)]
pub struct Log<const P: usize, S: Storage> {
    pager: Pager<P, S>,
    root: ProtectedPageId<P>,
    /// The page of each record, in order (what the root lists).
    records: Vec<u64>,
}

impl<const P: usize, S: Storage> Log<P, S> {
    /// Opens the log `pager` holds, or starts one in an empty pager: finds the root (the one
    /// protected page), reads the list of records, and frees the pages a crash left allocated
    /// but unpublished. On an error, the pager comes back with it.
    // The pager is large, and it is what the error hands back (as `Pager::try_open_in` hands
    // back the storage): boxing it would only add an allocation.
    #[allow(clippy::result_large_err)]
    pub fn open(mut pager: Pager<P, S>) -> Result<Log<P, S>, (Error, Pager<P, S>)> {
        match Self::find_or_create_root(&mut pager) {
            Ok((root, records)) => {
                let mut log = Log {
                    pager,
                    root,
                    records,
                };
                match log.free_leaked() {
                    Ok(()) => Ok(log),
                    Err(error) => Err((error, log.pager)),
                }
            }
            Err(error) => Err((error, pager)),
        }
    }

    fn find_or_create_root(
        pager: &mut Pager<P, S>,
    ) -> Result<(ProtectedPageId<P>, Vec<u64>), Error> {
        let existing = pager.iter_allocated_protected_pages().next();
        let root = match existing {
            Some(root) => root,
            // A new protected page reads as zeros: an empty log, whose magic the first append
            // writes. (Writing the magic here, in a commit of its own, left a window where a
            // crash kept a root of zeros; the crash test found it.)
            None => pager.alloc_protected()?,
        };
        let bytes = root.get(pager)?.as_bytes();
        let records = decode_root(bytes)?;
        for &page in &records {
            if !pager.is_allocated(PageId::from_raw(page)) {
                return Err(Error::Corrupt(format!(
                    "the root lists page {page}, which is free"
                )));
            }
        }
        Ok((root, records))
    }

    /// Frees the regular pages no root lists (a crash between `alloc` and the publishing commit).
    fn free_leaked(&mut self) -> Result<(), Error> {
        let leaked: Vec<PageId<P>> = self
            .pager
            .iter_allocated_pages()
            .filter(|id| !self.records.contains(&id.raw()))
            .collect();
        if !leaked.is_empty() {
            self.pager.free_bulk(leaked)?;
        }
        Ok(())
    }

    /// Appends `record`; durable once this returns `Ok` (its index).
    pub fn append(&mut self, record: &[u8]) -> Result<usize, Error> {
        let max = P - RECORD_HEADER_BYTES;
        if record.len() > max {
            return Err(Error::TooLong {
                len: record.len(),
                max,
            });
        }
        if ROOT_HEADER_BYTES + (self.records.len() + 1) * 8 > P {
            return Err(Error::Full);
        }
        let id = self.pager.alloc()?;
        let page = id.get_mut(&mut self.pager)?.as_bytes_mut();
        page[..RECORD_HEADER_BYTES].copy_from_slice(&(record.len() as u32).to_le_bytes());
        page[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + record.len()].copy_from_slice(record);
        #[cfg(not(feature = "planted-bug"))]
        self.pager.sync_page(id)?; // the record is durable before the root names it
        self.publish(id.raw())?;
        #[cfg(feature = "planted-bug")]
        self.pager.sync_page(id)?; // too late: the root already names it
        self.records.push(id.raw());
        Ok(self.records.len() - 1)
    }

    /// Commits the root with `page` appended to its list.
    fn publish(&mut self, page: u64) -> Result<(), Error> {
        let count = self.records.len();
        let mut writer = self.root.get_mut(&mut self.pager)?;
        let root = writer.page_mut().as_bytes_mut();
        root[..8].copy_from_slice(MAGIC);
        root[8..16].copy_from_slice(&(count as u64 + 1).to_le_bytes());
        let at = ROOT_HEADER_BYTES + count * 8;
        root[at..at + 8].copy_from_slice(&page.to_le_bytes());
        writer.commit()?;
        Ok(())
    }

    /// How many records the log holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True if the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Record `index`.
    pub fn get(&self, index: usize) -> Result<Vec<u8>, Error> {
        let page = *self
            .records
            .get(index)
            .ok_or_else(|| Error::Corrupt(format!("no record {index}")))?;
        let bytes = PageId::<P>::from_raw(page).get(&self.pager)?.as_bytes();
        let len = u32::from_le_bytes(
            bytes[..RECORD_HEADER_BYTES]
                .try_into()
                .map_err(|_| Error::Corrupt("short page".into()))?,
        ) as usize;
        bytes
            .get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::Corrupt(format!("record {index} claims {len} bytes")))
    }

    /// Every record, in order.
    pub fn records(&self) -> Result<Vec<Vec<u8>>, Error> {
        (0..self.len()).map(|index| self.get(index)).collect()
    }

    /// The pager (for its statistics, or a crash test's `Recorder::ack`).
    pub fn pager(&self) -> &Pager<P, S> {
        &self.pager
    }

    /// Closes the log, giving the pager back.
    pub fn into_pager(self) -> Pager<P, S> {
        self.pager
    }
}

/// The list of record pages a root holds (pure: bytes in, list or error out).
fn decode_root(bytes: &[u8]) -> Result<Vec<u64>, Error> {
    let word = |at: usize| -> Option<u64> {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if bytes.iter().all(|&b| b == 0) {
        return Ok(Vec::new()); // a root nothing was published in yet
    }
    if bytes.get(..8) != Some(MAGIC.as_slice()) {
        return Err(Error::Corrupt("the root page has no TINYKV01 magic".into()));
    }
    let count = word(8).ok_or_else(|| Error::Corrupt("short root".into()))?;
    let capacity = (bytes.len().saturating_sub(ROOT_HEADER_BYTES) / 8) as u64;
    if count > capacity {
        return Err(Error::Corrupt(format!(
            "the root counts {count} records, it holds {capacity} at most"
        )));
    }
    (0..count as usize)
        .map(|index| {
            word(ROOT_HEADER_BYTES + index * 8)
                .ok_or_else(|| Error::Corrupt(format!("root entry {index} cut off")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_root_rejects_what_it_cannot_read() {
        assert_eq!(decode_root(&[0; 64]).unwrap(), [0u64; 0], "zeros: empty");
        let mut root = [0u8; 64];
        root[0] = 1;
        assert!(decode_root(&root).is_err(), "no magic");
        root[..8].copy_from_slice(MAGIC);
        root[8..16].copy_from_slice(&7u64.to_le_bytes());
        assert!(decode_root(&root).is_err(), "7 entries do not fit 48 bytes");
        root[8..16].copy_from_slice(&2u64.to_le_bytes());
        root[16..24].copy_from_slice(&5u64.to_le_bytes());
        root[24..32].copy_from_slice(&9u64.to_le_bytes());
        assert_eq!(decode_root(&root).unwrap(), [5, 9]);
    }
}
