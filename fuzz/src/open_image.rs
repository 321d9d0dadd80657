//! The `open_image` target: opening any image gives a pager or a typed error (INV-9), and a
//! pager that opens is consistent and works.
//!
//! Input layout (`OpenInput`):
//!
//! * byte 0 even: *raw*. Bit 1 of byte 0 picks the page size (0: 1024, 1: 4096); the rest of
//!   the input is the image.
//! * byte 0 odd: *structured*. The rest is decoded with `arbitrary` into [`Structured`]: one of
//!   the valid images [`base_images`] builds in-process from small seeded workloads (fresh,
//!   after regular and protected work with growth, and crash images: torn first barrier,
//!   between the barriers, during a growth), then a list of [`Mutation`]s: bit flips, zeroed
//!   sectors, field overwrites (page size, version, generations, counts), copied pages,
//!   truncation and extension, and checksum repair (so that changed fields get past the CRC and
//!   reach the checks behind it).
//!
//! Inputs over [`MAX_INPUT`] bytes are ignored. If the image opens, [`exercise`] checks the
//! pager: listings and counts agree, every listed page is accessible, every protected page
//! reads or reports `CorruptProtectedPage`; then allocates, writes and frees regular and
//! protected pages (each must succeed, hand out nothing owned, read back what was committed);
//! and finally reopens the durable image, which must hold the same state as the pager's memory.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use mappedpages::format::{
    DIRECTORY_MAGIC, GROUP_MAGIC, Geometry, META_MAGIC, SUPERBLOCK_MAGIC, SUPERBLOCK_RECORD_BYTES,
};
use mappedpages::{
    CrashLength, MappedPageError, PageId, Pager, ProtectedPageId, SectorSize, SimStorage, Storage,
};

use crate::{crc32, finding, summarize};

/// Largest input looked at (1 MiB).
pub const MAX_INPUT: usize = 1 << 20;
/// Largest image a structured input may extend to.
const MAX_IMAGE: usize = 1 << 20;

/// One open_image input.
pub enum OpenInput {
    /// Raw bytes.
    Raw {
        /// 4096-byte pages (else 1024).
        page_4k: bool,
        /// The image.
        image: Vec<u8>,
    },
    /// A mutated valid image.
    Structured(Structured),
}

impl std::fmt::Debug for OpenInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenInput::Raw { page_4k, image } => f
                .debug_struct("Raw")
                .field("page_size", &if *page_4k { 4096 } else { 1024 })
                .field("image", &summarize(image))
                .finish(),
            OpenInput::Structured(s) => s.fmt(f),
        }
    }
}

impl OpenInput {
    /// Raw-mode bytes for `image` at `page_size`.
    pub fn raw_bytes(page_size: usize, image: &[u8]) -> Vec<u8> {
        let mut out = vec![if page_size == 4096 { 2 } else { 0 }];
        out.extend_from_slice(image);
        out
    }
}

impl<'a> Arbitrary<'a> for OpenInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.arbitrary_len::<u8>()?;
        Self::arbitrary_take_rest(Unstructured::new(u.bytes(len)?))
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        let mode = u8::arbitrary(&mut u)?;
        if mode & 1 == 0 {
            Ok(OpenInput::Raw {
                page_4k: mode & 2 != 0,
                image: u.take_rest().to_vec(),
            })
        } else {
            Ok(OpenInput::Structured(Structured::arbitrary_take_rest(u)?))
        }
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, None)
    }
}

/// A valid image and what to do to it.
#[derive(Arbitrary, Debug, Clone)]
pub struct Structured {
    /// 4096-byte pages (else 1024).
    pub page_4k: bool,
    /// Which base image (modulo their number).
    pub base: u8,
    /// Varies the operations run on a pager that opens.
    pub ops_seed: u8,
    /// Applied in order.
    pub mutations: Vec<Mutation>,
}

/// A change to an image. Page indices are taken modulo the image's pages, offsets modulo the
/// page size.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Mutation {
    /// Flips one bit.
    FlipBit {
        /// Page.
        page: u16,
        /// Byte in the page.
        offset: u16,
        /// Bit (modulo 8).
        bit: u8,
    },
    /// Zeroes one 512-byte sector.
    ZeroSector {
        /// Page.
        page: u16,
        /// Sector in the page.
        sector: u8,
    },
    /// Writes a u32 (LE).
    SetU32 {
        /// Page.
        page: u16,
        /// Byte in the page.
        offset: u16,
        /// Value.
        value: u32,
    },
    /// Writes a u64 (LE).
    SetU64 {
        /// Page.
        page: u16,
        /// Byte in the page.
        offset: u16,
        /// Value.
        value: u64,
    },
    /// Adds a small delta to a u64 field (a generation, a page count, a page number).
    NudgeU64 {
        /// Page.
        page: u16,
        /// Byte in the page (rounded down to a multiple of 8).
        offset: u16,
        /// Delta.
        delta: i8,
    },
    /// Sets the page-size field of a record (superblock: byte 16; other pages: byte 12).
    PageSizeField {
        /// Page.
        page: u16,
        /// Value.
        value: u32,
    },
    /// Sets the superblock's format version.
    Version(u32),
    /// Copies one page over another.
    CopyPage {
        /// Source page.
        from: u16,
        /// Destination page.
        to: u16,
    },
    /// Cuts the image to `pages` pages plus `bytes` bytes (never longer than it was).
    Truncate {
        /// Whole pages kept (modulo the image's pages + 1).
        pages: u16,
        /// Further bytes (modulo the page size).
        bytes: u16,
    },
    /// Appends zero pages.
    Extend {
        /// Pages appended.
        pages: u8,
    },
    /// Recomputes the CRC of the record at the start of a page (superblock: bytes 12..64;
    /// other pages: 12..P), so that a changed field passes the checksum.
    FixChecksum {
        /// Page.
        page: u16,
    },
    /// Recomputes the CRC of every page that starts with one of the four magics.
    FixAllChecksums,
}

/// Valid images of `page_size`-byte pages (1024 or 4096), built once per process.
pub fn base_images(page_size: usize) -> &'static [(String, Vec<u8>)] {
    static K1: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    static K4: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    match page_size {
        1024 => K1.get_or_init(build_images::<1024>),
        4096 => K4.get_or_init(build_images::<4096>),
        _ => panic!("harness: page size {page_size}"),
    }
}

fn build_images<const P: usize>() -> Vec<(String, Vec<u8>)> {
    let mut images = Vec::new();
    let mut storage = SimStorage::new();
    storage.record_sync_snapshots();
    let mut pager = Pager::<P, SimStorage>::create_in(storage).expect("create");
    images.push(("fresh".to_string(), pager.storage().durable_image()));
    // Regular pages (1 KiB: enough to grow the file and to fragment the log), protected pages
    // with full and partial commits, frees of both kinds.
    let regular = pager
        .alloc_bulk(if P == 1024 { 24 } else { 3 })
        .expect("alloc_bulk");
    for (i, id) in regular.iter().enumerate() {
        id.get_mut(&mut pager).expect("page").as_bytes_mut()[..4]
            .copy_from_slice(&(i as u32).to_le_bytes());
    }
    pager.sync_all().expect("sync_all");
    let mut protected = Vec::new();
    for round in 0..3u8 {
        let id = pager.alloc_protected().expect("alloc_protected");
        let mut writer = id.get_mut(&mut pager).expect("writer");
        writer.page_mut().as_bytes_mut().fill(0x10 + round);
        writer.commit().expect("commit");
        protected.push(id);
    }
    let mut writer = protected[0].get_mut(&mut pager).expect("writer");
    writer.page_mut().as_bytes_mut()[100..300].fill(0x77);
    writer.commit().expect("commit");
    pager.free_protected(protected[1]).expect("free_protected");
    for id in regular.iter().step_by(2).skip(1) {
        pager.free(*id).expect("free");
    }
    pager.alloc().expect("alloc");
    images.push(("worked".to_string(), pager.storage().durable_image()));
    // The last commit (a growing one when there is one), crashed.
    let snapshots = pager.storage().sync_snapshots();
    let n = snapshots.len();
    let between = &snapshots[n - 1]; // before the superblock barrier: Y is durable, not named
    images.push((
        "between-barriers".to_string(),
        between.crash_image(SectorSize::S512, &[], CrashLength::Current),
    ));
    let first = &snapshots[n - 2]; // before the first barrier: keep every other sector
    let torn: Vec<u64> = first
        .in_flight_sectors(SectorSize::S512)
        .into_iter()
        .step_by(2)
        .collect();
    images.push((
        "torn-first-barrier".to_string(),
        first.crash_image(SectorSize::S512, &torn, CrashLength::Current),
    ));
    if let Some(growing) = snapshots
        .iter()
        .find(|s| s.durable_len_bytes() != s.len_bytes())
    {
        let all = growing.in_flight_sectors(SectorSize::S512);
        images.push((
            "growth-current-length".to_string(),
            growing.crash_image(SectorSize::S512, &all, CrashLength::Current),
        ));
    }
    images
}

fn page_range(image: &[u8], page_size: usize, page: u16) -> Option<std::ops::Range<usize>> {
    let pages = image.len() / page_size;
    if pages == 0 {
        return None;
    }
    let start = usize::from(page) % pages * page_size;
    Some(start..start + page_size)
}

fn fix_checksum(image: &mut [u8], start: usize, page_size: usize) {
    let end = if start == 0 {
        SUPERBLOCK_RECORD_BYTES
    } else {
        page_size
    };
    if start + end > image.len() {
        return;
    }
    let crc = crc32(&image[start + 12..start + end]);
    image[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// Applies `mutation` to `image`.
pub fn apply(image: &mut Vec<u8>, page_size: usize, mutation: Mutation) {
    let at = |image: &Vec<u8>, page: u16, offset: u16, width: usize| {
        page_range(image, page_size, page)
            .map(|range| range.start + (usize::from(offset) % (page_size - width + 1)))
    };
    match mutation {
        Mutation::FlipBit { page, offset, bit } => {
            if let Some(i) = at(image, page, offset, 1) {
                image[i] ^= 1 << (bit % 8);
            }
        }
        Mutation::ZeroSector { page, sector } => {
            if let Some(range) = page_range(image, page_size, page) {
                let start = range.start + usize::from(sector) % (page_size / 512) * 512;
                image[start..start + 512].fill(0);
            }
        }
        Mutation::SetU32 {
            page,
            offset,
            value,
        } => {
            if let Some(i) = at(image, page, offset, 4) {
                image[i..i + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        Mutation::SetU64 {
            page,
            offset,
            value,
        } => {
            if let Some(i) = at(image, page, offset, 8) {
                image[i..i + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        Mutation::NudgeU64 {
            page,
            offset,
            delta,
        } => {
            if let Some(i) = at(image, page, offset & !7, 8) {
                let i = i & !7;
                let value = u64::from_le_bytes(image[i..i + 8].try_into().expect("8 bytes"));
                let value = value.wrapping_add_signed(i64::from(delta));
                image[i..i + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        Mutation::PageSizeField { page, value } => {
            if let Some(range) = page_range(image, page_size, page) {
                let i = range.start + if range.start == 0 { 16 } else { 12 };
                image[i..i + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        Mutation::Version(version) => {
            if image.len() >= 16 {
                image[12..16].copy_from_slice(&version.to_le_bytes());
            }
        }
        Mutation::CopyPage { from, to } => {
            if let (Some(from), Some(to)) = (
                page_range(image, page_size, from),
                page_range(image, page_size, to),
            ) {
                image.copy_within(from, to.start);
            }
        }
        Mutation::Truncate { pages, bytes } => {
            let whole = image.len() / page_size;
            let len = usize::from(pages) % (whole + 1) * page_size + usize::from(bytes) % page_size;
            image.truncate(len);
        }
        Mutation::Extend { pages } => {
            let len = (image.len() + usize::from(pages) * page_size).min(MAX_IMAGE);
            image.resize(len, 0);
        }
        Mutation::FixChecksum { page } => {
            if let Some(range) = page_range(image, page_size, page) {
                fix_checksum(image, range.start, page_size);
            }
        }
        Mutation::FixAllChecksums => {
            for start in (0..image.len() / page_size).map(|p| p * page_size) {
                let magic = &image[start..start + 8];
                let known = if start == 0 {
                    magic == SUPERBLOCK_MAGIC
                } else {
                    magic == META_MAGIC || magic == GROUP_MAGIC || magic == DIRECTORY_MAGIC
                };
                if known {
                    fix_checksum(image, start, page_size);
                }
            }
        }
    }
}

/// Runs one input; panics with a `FINDING` message on any violation.
pub fn run(input: &OpenInput) {
    match input {
        OpenInput::Raw { page_4k, image } => {
            if image.len() > MAX_INPUT {
                return;
            }
            if *page_4k {
                open_and_exercise::<4096>(image.clone(), 0);
            } else {
                open_and_exercise::<1024>(image.clone(), 0);
            }
        }
        OpenInput::Structured(s) => {
            let page_size = if s.page_4k { 4096 } else { 1024 };
            let bases = base_images(page_size);
            let mut image = bases[usize::from(s.base) % bases.len()].1.clone();
            for &mutation in &s.mutations {
                apply(&mut image, page_size, mutation);
            }
            if s.page_4k {
                open_and_exercise::<4096>(image, s.ops_seed);
            } else {
                open_and_exercise::<1024>(image, s.ops_seed);
            }
        }
    }
}

/// Opens `image`; a typed error is fine, a pager is exercised.
pub fn open_and_exercise<const P: usize>(image: Vec<u8>, seed: u8) {
    // Any error is a typed value; a panic aborts the process and is reported as INV-9.
    if let Ok(pager) = Pager::<P, SimStorage>::open_in(SimStorage::from_image(image)) {
        exercise(pager, seed);
    }
}

/// What a pager holds: regular pages, protected ids and what each reads (`None`: corrupt).
#[derive(Debug, PartialEq, Eq)]
struct State {
    regular: BTreeSet<u64>,
    protected: BTreeMap<u64, Option<u64>>,
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Checks listings against counts and lookups (INV-5) and that every protected page reads or
/// reports corruption (INV-4); returns the state.
fn consistent<const P: usize>(pager: &Pager<P, SimStorage>, when: &str) -> State {
    let geometry = Geometry::for_version(P, pager.format_version());
    let regular: Vec<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    if regular.len() as u64 != pager.allocated_page_count() {
        finding(
            5,
            format!(
                "{when}: iter_allocated_pages lists {} pages, allocated_page_count is {}",
                regular.len(),
                pager.allocated_page_count()
            ),
        );
    }
    if regular.windows(2).any(|w| w[0] >= w[1]) {
        finding(
            5,
            format!("{when}: iter_allocated_pages is not strictly increasing"),
        );
    }
    for &page in &regular {
        let id = PageId::<P>::from_raw(page);
        if geometry.is_internal(page) || page >= pager.page_count() {
            finding(
                5,
                format!("{when}: page {page} is listed but internal or past the end"),
            );
        }
        if !pager.is_allocated(id) {
            finding(
                5,
                format!("{when}: page {page} is listed but is_allocated says no"),
            );
        }
        if let Err(error) = id.get(pager) {
            finding(
                5,
                format!("{when}: listed page {page} cannot be read: {error}"),
            );
        }
    }
    let mut protected = BTreeMap::new();
    for id in pager.iter_allocated_protected_pages() {
        if !pager.is_protected_allocated(id) {
            finding(
                5,
                format!(
                    "{when}: protected page {} is listed but not allocated",
                    id.raw()
                ),
            );
        }
        let content = match id.get(pager) {
            Ok(page) => Some(fnv(page.as_bytes())),
            Err(MappedPageError::CorruptProtectedPage { .. }) => None,
            Err(error) => finding(
                4,
                format!("{when}: listed protected page {} gives {error}", id.raw()),
            ),
        };
        if protected.insert(id.raw(), content).is_some() {
            finding(
                5,
                format!("{when}: protected page {} is listed twice", id.raw()),
            );
        }
    }
    if protected.len() as u64 != pager.protected_page_count() {
        finding(
            5,
            format!(
                "{when}: {} protected pages listed, protected_page_count is {}",
                protected.len(),
                pager.protected_page_count()
            ),
        );
    }
    if pager.storage().len_bytes() < pager.page_count() * P as u64 {
        finding(
            5,
            format!("{when}: the file is shorter than its page count"),
        );
    }
    State {
        regular: regular.into_iter().collect(),
        protected,
    }
}

fn must<T>(result: Result<T, MappedPageError>, what: &str) -> T {
    result
        .unwrap_or_else(|error| finding(6, format!("{what} fails on a pager that opened: {error}")))
}

/// Checks an opened pager, works with it, and compares it with a reopening of its durable image.
pub fn exercise<const P: usize>(mut pager: Pager<P, SimStorage>, seed: u8) {
    // A damaged bitmap slot of a group open does not read (format 3, SPEC.md §4.9) is found on
    // first use, as a typed error: as good an answer as one from open. Such a pager lists none
    // of the group's pages, so the checks below do not apply to it.
    match pager.check_bitmaps() {
        Ok(()) => {}
        Err(MappedPageError::CorruptGroupSlot { .. }) => return,
        Err(error) => finding(
            6,
            format!("check_bitmaps fails on a pager that opened: {error}"),
        ),
    }
    let before = consistent(&pager, "after open");

    // A regular page: not owned by anyone, writable; then a few more in one commit.
    let id = must(pager.alloc(), "alloc");
    if before.regular.contains(&id.raw()) {
        finding(
            3,
            format!(
                "alloc handed out page {}, which is already allocated",
                id.raw()
            ),
        );
    }
    must(id.get_mut(&mut pager), "get_mut of a new page")
        .as_bytes_mut()
        .fill(0xA5);
    let bulk = must(pager.alloc_bulk(1 + usize::from(seed % 8)), "alloc_bulk");
    if let Some(owned) = bulk
        .iter()
        .find(|b| before.regular.contains(&b.raw()) || **b == id)
    {
        finding(
            3,
            format!(
                "alloc_bulk handed out page {}, which is already allocated",
                owned.raw()
            ),
        );
    }
    // Protected pages that could be read must be untouched by the new regular pages.
    let after_regular = consistent(&pager, "after alloc and alloc_bulk");
    for (raw, content) in &before.protected {
        if after_regular.protected.get(raw) != Some(content) {
            finding(
                3,
                format!("protected page {raw} changed when regular pages were allocated"),
            );
        }
    }
    must(pager.free(id), "free of a new page");

    // A new protected page reads zeros, takes a commit, reads it back.
    let pid = must(pager.alloc_protected(), "alloc_protected");
    if before.protected.contains_key(&pid.raw()) {
        finding(
            3,
            format!(
                "alloc_protected handed out protected page {}, which is allocated",
                pid.raw()
            ),
        );
    }
    let page = must(pid.get(&pager), "get of a new protected page");
    if page.as_bytes().iter().any(|&b| b != 0) {
        finding(
            4,
            format!("new protected page {} does not read as zeros", pid.raw()),
        );
    }
    let mut writer = must(pid.get_mut(&mut pager), "get_mut of a new protected page");
    let offset = usize::from(seed) * 13 % P;
    writer.page_mut().as_bytes_mut()[offset..].fill(0x5A ^ seed);
    must(writer.commit(), "commit of a new protected page");
    let page = must(pid.get(&pager), "get of a committed protected page");
    if page.as_bytes()[..offset].iter().any(|&b| b != 0)
        || page.as_bytes()[offset..].iter().any(|&b| b != 0x5A ^ seed)
    {
        finding(
            4,
            format!(
                "protected page {} does not read what was committed",
                pid.raw()
            ),
        );
    }

    // An existing protected page that reads: a partial commit starts from its content.
    if let Some((&raw, _)) = before
        .protected
        .iter()
        .filter(|(_, content)| content.is_some())
        .nth(usize::from(seed) % before.protected.len().max(1))
    {
        let old = ProtectedPageId::<P>::from_raw(raw);
        let committed = must(old.get(&pager), "get of a readable protected page")
            .as_bytes()
            .to_vec();
        let mut writer = must(
            old.get_mut(&mut pager),
            "get_mut of a readable protected page",
        );
        if writer.page().as_bytes() != committed {
            finding(
                4,
                format!("the writer of protected page {raw} does not start from its content"),
            );
        }
        writer.page_mut().as_bytes_mut()[..8].copy_from_slice(&u64::from(seed).to_le_bytes());
        must(writer.commit(), "commit of an existing protected page");
        let mut expected = committed;
        expected[..8].copy_from_slice(&u64::from(seed).to_le_bytes());
        if must(old.get(&pager), "get after commit").as_bytes() != expected {
            finding(
                4,
                format!("protected page {raw} does not read what was committed"),
            );
        }
    }
    // Frees of existing pages, chosen by the seed (an error is a typed answer for a corrupt one).
    let nth_regular = usize::from(seed / 2) % before.regular.len().max(1);
    if seed & 1 == 1
        && let Some(&raw) = before.regular.iter().nth(nth_regular)
    {
        must(pager.free(PageId::from_raw(raw)), "free of a listed page");
    }
    let nth_protected = usize::from(seed / 4) % before.protected.len().max(1);
    if seed & 2 == 2
        && let Some(&raw) = before.protected.keys().nth(nth_protected)
    {
        let _ = pager.free_protected(ProtectedPageId::from_raw(raw));
    }
    if pager.is_poisoned() {
        finding(7, "the pager is poisoned although no sync failed");
    }
    let in_memory = consistent(&pager, "after the operations");

    // Everything above was committed: the durable image holds the same state.
    let durable = pager.storage().durable_image();
    let reopened =
        Pager::<P, SimStorage>::open_in(SimStorage::from_image(durable)).unwrap_or_else(|error| {
            finding(
                1,
                format!("the durable image after the operations does not open: {error}"),
            )
        });
    let on_disk = consistent(&reopened, "after reopening");
    if in_memory != on_disk {
        finding(
            7,
            format!(
                "memory and the reopened durable image differ: memory {} regular / {} protected, disk {} regular / {} protected{}",
                in_memory.regular.len(),
                in_memory.protected.len(),
                on_disk.regular.len(),
                on_disk.protected.len(),
                if in_memory.regular == on_disk.regular
                    && in_memory.protected.keys().eq(on_disk.protected.keys())
                {
                    " (same ids, different protected content)"
                } else {
                    ""
                }
            ),
        );
    }
}
