//! Reference contenders, run interleaved op by op with the durable single `alloc` rows so that
//! they see the same disk at the same moments: the physical limit of a durable page change, and
//! what a user would pick instead for a crash-safe small record (redb).

use std::path::{Path, PathBuf};

use redb::{Database, TableDefinition};

use crate::measure::BenchResult;
use crate::rows::{PAGE_SIZE_BYTES, remove};

/// Pages of the physical-limit file; operation `i` changes and syncs page `i mod 16`.
const LIMIT_PAGE_COUNT: usize = 16;

/// The physical limit: change one byte of a mapped file and `msync(MS_SYNC)` that 4 KiB page.
pub struct PhysicalLimit {
    path: PathBuf,
    map: memmap2::MmapMut,
    /// Operation `i` changes page `i mod page_count`.
    page_count: usize,
}

impl PhysicalLimit {
    pub fn create(path: &Path) -> BenchResult<PhysicalLimit> {
        Self::with_pages(path, LIMIT_PAGE_COUNT)
    }

    /// The physical limit of a durable write to **new file space**: a sparse file of
    /// `page_count` pages, operation `i` writes page `i` (never written before) and `msync`s
    /// it, so the file system allocates a block and writes its metadata in the same flush (on
    /// ext4 without a journal: the inode, one more device write).
    pub fn create_new_pages(path: &Path, page_count: usize) -> BenchResult<PhysicalLimit> {
        Self::with_pages(path, page_count.max(1))
    }

    fn with_pages(path: &Path, page_count: usize) -> BenchResult<PhysicalLimit> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.set_len((page_count * PAGE_SIZE_BYTES) as u64)?;
        // SAFETY: the file was just created in the harness's private directory; nothing else maps
        // or truncates it while this map is alive.
        let map = unsafe { memmap2::MmapMut::map_mut(&file)? };
        map.flush()?;
        Ok(PhysicalLimit {
            path: path.to_path_buf(),
            map,
            page_count,
        })
    }

    pub fn op(&mut self, index: usize) -> BenchResult<()> {
        let offset = (index % self.page_count) * PAGE_SIZE_BYTES;
        self.map[offset] = self.map[offset].wrapping_add(1);
        self.map.flush_range(offset, PAGE_SIZE_BYTES)?;
        Ok(())
    }

    pub fn finish(self) -> BenchResult<()> {
        drop(self.map);
        remove(&self.path)
    }

    pub fn label() -> &'static str {
        "reference: physical limit (change + msync one 4 KiB page)"
    }

    pub fn note(op_count: usize) -> String {
        format!(
            "N = {op_count} msync(MS_SYNC) of one page of a mapped {LIMIT_PAGE_COUNT}-page file, \
             cycling over its pages; interleaved op by op with the alloc ×1, durable rows"
        )
    }
}

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

/// redb: one write transaction per insert of a 64-byte record, default (immediate) durability.
pub struct RedbInsert {
    path: PathBuf,
    database: Database,
}

impl RedbInsert {
    pub fn create(path: &Path) -> BenchResult<RedbInsert> {
        Ok(RedbInsert {
            path: path.to_path_buf(),
            database: Database::create(path)?,
        })
    }

    pub fn op(&mut self, index: usize) -> BenchResult<()> {
        let record = [7u8; 64];
        let transaction = self.database.begin_write()?;
        {
            let mut table = transaction.open_table(RECORDS)?;
            table.insert(index as u64, &record[..])?;
        }
        transaction.commit()?;
        Ok(())
    }

    pub fn finish(self) -> BenchResult<()> {
        drop(self.database);
        remove(&self.path)
    }

    pub fn label() -> String {
        format!(
            "reference: redb {} single insert, durable commit",
            crate::REDB_VERSION
        )
    }

    pub fn note(op_count: usize) -> String {
        format!(
            "N = {op_count} write transactions of one 64-byte record each, Durability::Immediate \
             (the default); interleaved op by op with the alloc ×1, durable rows"
        )
    }
}
