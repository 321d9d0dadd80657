//! A full verification of a file (SPEC.md §4.6): every structure read, every finding reported.
//! It reads only; the decoding is the format's, the recovery is [`crate::recovery`]'s.

use std::fmt;

use crate::error::MappedPageError;
use crate::format::{
    Geometry, MetaPage, MetaSlot, TableEntry, decode_directory_slot, decode_group_slot,
    decode_table_page, directory_digest_term, slot_checksum_field, slot_digest_term,
    table_digest_term,
};
use crate::group_loads::pinned_slot_bits;
use crate::readonly::Repair;
use crate::recovery::table::Candidates;
use crate::recovery::{RecoveryDecision, decode_candidates, recover_decoded, repair};

/// What [`ReadOnlyPager::verify`](crate::ReadOnlyPager::verify) found.
///
/// A file a clean close left has no findings and no planned repairs
/// ([`is_clean`](Self::is_clean)). Planned repairs alone (a crash image) are not damage: a
/// read-write open makes them. Findings are damage: pages that do not decode, digests that do
/// not match, protected copies that fail their CRC.
///
/// ```
/// use mappedpages::{Pager, ReadOnlyPager};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db.bin");
/// let mut pager = Pager::<1024>::create(&path).unwrap();
/// pager.alloc_protected().unwrap();
/// drop(pager);
/// let report = ReadOnlyPager::<1024>::verify(&path).unwrap();
/// assert!(report.is_clean(), "{report:?}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Which recovery rule chose the committed state; `None` when recovery refuses the file
    /// (then [`Finding::Unrecoverable`] says why).
    pub decision: Option<RecoveryDecision>,
    /// The repairs a read-write open would make (SPEC.md §4.3).
    pub repairs: Vec<Repair>,
    /// Every piece of damage found, in file order of the structures: superblock, metadata
    /// copies, bitmap groups, directory blocks, protected pages.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// True when there is nothing to report: no findings and no planned repairs.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("db.bin");
    /// # drop(mappedpages::Pager::<1024>::create(&path).unwrap());
    /// assert!(mappedpages::ReadOnlyPager::<1024>::verify(&path).unwrap().is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.repairs.is_empty()
    }
}

/// One piece of damage found by [`ReadOnlyPager::verify`](crate::ReadOnlyPager::verify).
/// `Display` gives a one-line description.
///
/// ```
/// use mappedpages::{Finding, Pager, ReadOnlyPager};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db.bin");
/// let mut pager = Pager::<1024>::create(&path).unwrap();
/// pager.alloc().unwrap(); // a second commit: both metadata copies hold one
/// drop(pager);
/// let mut image = std::fs::read(&path).unwrap();
/// image[1024 + 100] ^= 1; // one bit of metadata copy A (page 1), the older one
/// std::fs::write(&path, &image).unwrap();
/// let report = ReadOnlyPager::<1024>::verify(&path).unwrap();
/// assert!(matches!(report.findings[..], [Finding::MetaCopy { page: 1, .. }]), "{report:?}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// The superblock (page 0) does not decode.
    Superblock {
        /// Why.
        detail: String,
    },
    /// A metadata copy (page 1 or 2) that holds something (its magic is not zero) does not decode.
    MetaCopy {
        /// The copy's page.
        page: u64,
        /// Why.
        detail: String,
    },
    /// Recovery refuses the file: a read-write or read-only open fails with this error.
    Unrecoverable {
        /// The error's text.
        detail: String,
    },
    /// A bitmap slot page of a group that holds something (its magic is not zero) does not
    /// decode, or lies past the end of the file.
    GroupSlot {
        /// The group.
        group: u64,
        /// The slot page.
        page: u64,
        /// Why.
        detail: String,
    },
    /// No slot of a group is valid at or below the generation of the copy being checked.
    NoGroupSlot {
        /// The group.
        group: u64,
    },
    /// The groups' newest valid slots are not the ones the copy's slot digest names.
    SlotDigest {
        /// The metadata copy checked.
        copy_page: u64,
    },
    /// A group table slot page (format 3) that holds something does not decode, or lies past
    /// the end of the file.
    TablePage {
        /// The table page `t`.
        table_page: u64,
        /// The slot page.
        page: u64,
        /// Why.
        detail: String,
    },
    /// No slot of a group table page (format 3) is valid at or below the copy's generation.
    NoTableSlot {
        /// The table page `t`.
        table_page: u64,
    },
    /// The group table's newest valid slots (format 3) are not the ones the copy's table digest
    /// names.
    TableDigest {
        /// The metadata copy checked.
        copy_page: u64,
    },
    /// A directory page that holds something does not decode, or lies past the end of the
    /// file.
    DirectoryPage {
        /// The directory block.
        block: u64,
        /// The page.
        page: u64,
        /// Why.
        detail: String,
    },
    /// No slot of a directory block is valid at or below the copy's generation; the chain is
    /// not followed further.
    NoDirectorySlot {
        /// The directory block.
        block: u64,
    },
    /// The two mirror pages of a directory block's current slot differ.
    MirrorMismatch {
        /// The directory block.
        block: u64,
        /// The two mirror pages.
        pages: [u64; 2],
    },
    /// The directory blocks' current slots are not the ones the copy's directory digest names.
    DirectoryDigest {
        /// The metadata copy checked.
        copy_page: u64,
    },
    /// A protected page's committed copy fails the CRC its directory entry records (or lies
    /// past the end of the file).
    ProtectedCopy {
        /// The protected page's id.
        id: u64,
        /// The backing page holding the committed copy.
        page: u64,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Superblock { detail } => write!(f, "superblock (page 0): {detail}"),
            Finding::MetaCopy { page, detail } => {
                write!(f, "metadata copy (page {page}): {detail}")
            }
            Finding::Unrecoverable { detail } => write!(f, "recovery refuses the file: {detail}"),
            Finding::GroupSlot {
                group,
                page,
                detail,
            } => write!(f, "group {group}: bitmap slot page {page}: {detail}"),
            Finding::NoGroupSlot { group } => write!(f, "group {group}: no valid bitmap slot"),
            Finding::TablePage {
                table_page,
                page,
                detail,
            } => write!(
                f,
                "group table page {table_page}: slot page {page}: {detail}"
            ),
            Finding::NoTableSlot { table_page } => {
                write!(f, "group table page {table_page}: no valid slot")
            }
            Finding::TableDigest { copy_page } => write!(
                f,
                "metadata copy (page {copy_page}): the group table slots are not the ones it \
                 committed"
            ),
            Finding::SlotDigest { copy_page } => write!(
                f,
                "metadata copy (page {copy_page}): the bitmap slots are not the ones it committed"
            ),
            Finding::DirectoryPage {
                block,
                page,
                detail,
            } => write!(f, "directory block {block}: page {page}: {detail}"),
            Finding::NoDirectorySlot { block } => {
                write!(f, "directory block {block}: no valid slot")
            }
            Finding::MirrorMismatch { block, pages } => write!(
                f,
                "directory block {block}: mirror pages {} and {} differ",
                pages[0], pages[1]
            ),
            Finding::DirectoryDigest { copy_page } => write!(
                f,
                "metadata copy (page {copy_page}): the directory slots are not the ones it committed"
            ),
            Finding::ProtectedCopy { id, page } => write!(
                f,
                "protected page {id}: committed copy (page {page}) fails its checksum"
            ),
        }
    }
}

fn page(image: &[u8], geometry: Geometry, page: u64) -> Option<&[u8]> {
    let start = usize::try_from(geometry.offset(page)).ok()?;
    let end = start.checked_add(geometry.page_size() as usize)?;
    image.get(start..end)
}

/// A page whose magic is zero holds nothing: never written, or scrubbed by recovery.
fn blank(bytes: &[u8]) -> bool {
    bytes.iter().take(8).all(|&b| b == 0)
}

/// Verifies `image`. Errors are the ones that say it is not a file of this kind at all
/// (`NotAMappedPagesFile`, `PageSizeMismatch`, `FileTooSmall`, …); everything else is a finding.
///
/// The structure walk (§4.6 steps 3–5) runs first, on the copy the superblock names (else the
/// newest that decodes), reporting `progress(done, total)` in groups and directory blocks: on a
/// cold cache it is the part that reads the file. Recovery's decision then runs on warm pages;
/// when it chooses another copy (§4.2 rows 3 and 5), that copy's structures are walked instead.
pub(crate) fn verify(
    image: &[u8],
    geometry: Geometry,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, MappedPageError> {
    let candidates = decode_candidates(image, geometry)?;
    let geometry = candidates.geometry;
    let mut findings = Vec::new();
    if let Err(error) = &candidates.superblock {
        findings.push(Finding::Superblock {
            detail: error.to_string(),
        });
    }
    for slot in [MetaSlot::A, MetaSlot::B] {
        // A copy never written (a new file has one) holds nothing: not damage.
        let never_written = page(image, geometry, slot.page()).is_some_and(blank);
        if let Err(error) = candidates.meta(slot)
            && !never_written
        {
            findings.push(Finding::MetaCopy {
                page: slot.page(),
                detail: error.to_string(),
            });
        }
    }
    // The copy whose structures are walked: the one recovery chooses; until it has, the one
    // the superblock names; else the newest that decodes.
    let named = candidates.superblock.as_ref().ok().map(|sb| sb.active_meta);
    let first = reference(&candidates, named);
    let mut walked = first.map(|slot| (slot, walk(image, geometry, &candidates, slot, progress)));
    let (decision, repairs, chosen) = match recover_decoded(&candidates, image) {
        Ok(recovered) => (
            Some(recovered.decision),
            repair::planned(&recovered),
            Some(recovered.state.active_meta()),
        ),
        // Nothing of this format found at all (or only with another page size): not a file
        // to report damage in.
        Err(
            error @ (MappedPageError::NotAMappedPagesFile
            | MappedPageError::PageSizeMismatch { .. }),
        ) => return Err(error),
        Err(error) => {
            findings.push(Finding::Unrecoverable {
                detail: error.to_string(),
            });
            (None, Vec::new(), None)
        }
    };
    let reference = reference(&candidates, chosen.or(named));
    if reference != walked.as_ref().map(|(slot, _)| *slot) {
        walked = reference.map(|slot| {
            (
                slot,
                walk(image, geometry, &candidates, slot, &mut |_, _| {}),
            )
        });
    }
    findings.extend(walked.into_iter().flat_map(|(_, found)| found));
    Ok(VerifyReport {
        decision,
        repairs,
        findings,
    })
}

/// `preferred` if it decodes, else the newest copy that decodes.
fn reference(candidates: &Candidates, preferred: Option<MetaSlot>) -> Option<MetaSlot> {
    preferred
        .filter(|&slot| candidates.meta(slot).is_ok())
        .or_else(|| {
            [MetaSlot::A, MetaSlot::B]
                .into_iter()
                .filter(|&slot| candidates.meta(slot).is_ok())
                .max_by_key(|&slot| {
                    candidates
                        .meta(slot)
                        .as_ref()
                        .map_or(0, |meta| meta.generation)
                })
        })
}

/// The findings of §4.6 steps 3–5 for copy `slot`, with progress in groups and blocks.
fn walk(
    image: &[u8],
    geometry: Geometry,
    candidates: &Candidates,
    slot: MetaSlot,
    progress: &mut dyn FnMut(u64, u64),
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Ok(meta) = candidates.meta(slot) {
        let total = meta
            .materialized_groups
            .saturating_add(meta.directory.block_count);
        progress(0, total);
        let mut done = |group| progress(group, total);
        if geometry.has_group_table() {
            let entries = check_table(image, geometry, meta, slot.page(), &mut findings);
            let copy_page = slot.page();
            check_pinned_groups(
                image,
                geometry,
                meta,
                copy_page,
                &entries,
                &mut findings,
                &mut done,
            );
        } else {
            check_groups(image, geometry, meta, slot.page(), &mut findings, &mut done);
        }
        let groups = meta.materialized_groups;
        check_directory(
            image,
            geometry,
            meta,
            slot.page(),
            &mut findings,
            &mut |block| {
                progress(groups.saturating_add(block), total);
            },
        );
        progress(total, total);
    }
    findings
}

/// Slot page `page_index` of `group`, or a finding that it lies past the end of the file.
fn slot_page<'a>(
    image: &'a [u8],
    geometry: Geometry,
    group: u64,
    page_index: u64,
    findings: &mut Vec<Finding>,
) -> Option<&'a [u8]> {
    let bytes = page(image, geometry, page_index);
    if bytes.is_none() {
        findings.push(Finding::GroupSlot {
            group,
            page: page_index,
            detail: "past the end of the file".into(),
        });
    }
    bytes
}

/// Every materialized group of `meta`: both slot pages decode (or hold nothing), one is valid
/// at or below the copy's generation, and the newest valid ones match the slot digest.
fn check_groups(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    copy_page: u64,
    findings: &mut Vec<Finding>,
    done: &mut dyn FnMut(u64),
) {
    let mut digest = 0u64;
    for group in 0..meta.materialized_groups {
        if group > 0 {
            done(group);
        }
        let mut newest: Option<(u64, u32)> = None;
        for slot in 0..2u8 {
            let page_index = geometry.slot_page(group, slot);
            let Some(bytes) = slot_page(image, geometry, group, page_index, findings) else {
                continue;
            };
            match decode_group_slot(bytes, geometry, group) {
                Ok((header, _)) if header.generation <= meta.generation => {
                    let checksum = slot_checksum_field(bytes).unwrap_or(0);
                    if newest.is_none_or(|(generation, _)| header.generation > generation) {
                        newest = Some((header.generation, checksum));
                    }
                }
                Ok(_) => {} // a leftover of a newer commit: a planned scrub, not damage
                Err(error) if !blank(bytes) => findings.push(Finding::GroupSlot {
                    group,
                    page: page_index,
                    detail: error.to_string(),
                }),
                Err(_) => {}
            }
        }
        match newest {
            Some((generation, checksum)) => {
                digest ^= slot_digest_term(group, generation, checksum);
            }
            None => findings.push(Finding::NoGroupSlot { group }),
        }
    }
    if digest != meta.slot_digest {
        findings.push(Finding::SlotDigest { copy_page });
    }
}

/// Format 3: every materialized group of `meta` has a table entry (`entries`, from
/// [`check_table`]) whose pinned slot matches it (SPEC.md §4.1 step 3: what the lazy load of
/// §4.9 checks on first use, here for every group at once); the other slot decodes or holds
/// nothing (a slot of a commit that never completed is left in place, §4.3); the entries give
/// the slot digest.
fn check_pinned_groups(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    copy_page: u64,
    entries: &[TableEntry],
    findings: &mut Vec<Finding>,
    done: &mut dyn FnMut(u64),
) {
    let mut digest = 0u64;
    for group in 0..meta.materialized_groups {
        if group > 0 {
            done(group);
        }
        let Some(entry) = entries.get(group as usize) else {
            findings.push(Finding::NoGroupSlot { group });
            continue;
        };
        digest ^= slot_digest_term(group, entry.generation, entry.checksum);
        for slot in 0..2u8 {
            let page_index = geometry.slot_page(group, slot);
            let Some(bytes) = slot_page(image, geometry, group, page_index, findings) else {
                continue;
            };
            if slot == entry.slot {
                // The decoder's reason when it does not decode, else the mismatch with the entry.
                let detail = match decode_group_slot(bytes, geometry, group) {
                    Err(error) => Some(format!(
                        "{error} (the slot its group table entry pins: damaged after its commit)"
                    )),
                    Ok(_) if pinned_slot_bits(bytes, geometry, group, entry).is_none() => {
                        Some(format!(
                            "not the slot its group table entry pins (generation {}, checksum \
                             {:#010x}, {} free pages): damaged after its commit",
                            entry.generation, entry.checksum, entry.free_pages
                        ))
                    }
                    Ok(_) => None,
                };
                if let Some(detail) = detail {
                    findings.push(Finding::GroupSlot {
                        group,
                        page: page_index,
                        detail,
                    });
                }
            } else if let Err(error) = decode_group_slot(bytes, geometry, group)
                && !blank(bytes)
            {
                findings.push(Finding::GroupSlot {
                    group,
                    page: page_index,
                    detail: error.to_string(),
                });
            }
        }
    }
    if digest != meta.slot_digest {
        findings.push(Finding::SlotDigest { copy_page });
    }
}

/// Format 3: every table page of `meta`'s groups: both slot pages decode (or hold nothing), one
/// is valid at or below the copy's generation, and the newest valid ones match the table digest.
/// Returns the entries of the newest valid slots, in group order (up to the first table page
/// without one).
fn check_table(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    copy_page: u64,
    findings: &mut Vec<Finding>,
) -> Vec<TableEntry> {
    let mut digest = 0u64;
    let mut entries = Vec::new();
    let mut complete = true;
    for table_page in 0..geometry.table_page_count(meta.materialized_groups) {
        let mut newest: Option<(u64, u32, Vec<TableEntry>)> = None;
        for slot in 0..2u8 {
            let page_index = geometry.table_slot_page(table_page, slot);
            let Some(bytes) = page(image, geometry, page_index) else {
                findings.push(Finding::TablePage {
                    table_page,
                    page: page_index,
                    detail: "past the end of the file".into(),
                });
                continue;
            };
            match decode_table_page(bytes, geometry, table_page) {
                Ok((header, page_entries)) if header.generation <= meta.generation => {
                    let checksum = slot_checksum_field(bytes).unwrap_or(0);
                    if newest
                        .as_ref()
                        .is_none_or(|(generation, _, _)| header.generation > *generation)
                    {
                        newest = Some((header.generation, checksum, page_entries));
                    }
                }
                Ok(_) => {} // a leftover of a newer commit: a planned scrub, not damage
                Err(error) if !blank(bytes) => findings.push(Finding::TablePage {
                    table_page,
                    page: page_index,
                    detail: error.to_string(),
                }),
                Err(_) => {}
            }
        }
        match newest {
            Some((generation, checksum, page_entries)) => {
                digest ^= table_digest_term(table_page, generation, checksum);
                if complete {
                    entries.extend(page_entries);
                }
            }
            None => {
                findings.push(Finding::NoTableSlot { table_page });
                complete = false;
            }
        }
    }
    if digest != meta.table_digest {
        findings.push(Finding::TableDigest { copy_page });
    }
    entries
}

/// The directory chain of `meta`: every page of every block decodes (or holds nothing), the
/// current slot's mirrors are identical, the current slots match the directory digest, and every
/// protected page's committed copy matches its CRC.
fn check_directory(
    image: &[u8],
    geometry: Geometry,
    meta: &MetaPage,
    copy_page: u64,
    findings: &mut Vec<Finding>,
    done: &mut dyn FnMut(u64),
) {
    let root = meta.directory;
    let per_block = geometry.directory_entries_per_block();
    let mut pages = root.head_pages;
    let mut digest = 0u64;
    for block in 0..root.block_count {
        done(block);
        let mut newest: Option<(usize, crate::format::DirectorySlot, u32)> = None;
        for (position, &page_index) in pages.iter().enumerate() {
            let Some(bytes) = page(image, geometry, page_index) else {
                findings.push(Finding::DirectoryPage {
                    block,
                    page: page_index,
                    detail: "past the end of the file".into(),
                });
                continue;
            };
            match decode_directory_slot(bytes, geometry, block, meta.page_count) {
                Ok(slot) if slot.generation <= meta.generation => {
                    let checksum = slot_checksum_field(bytes).unwrap_or(0);
                    if newest
                        .as_ref()
                        .is_none_or(|(_, kept, _)| slot.generation > kept.generation)
                    {
                        newest = Some((position, slot, checksum));
                    }
                }
                Ok(_) => {}
                Err(error) if !blank(bytes) => findings.push(Finding::DirectoryPage {
                    block,
                    page: page_index,
                    detail: error.to_string(),
                }),
                Err(_) => {}
            }
        }
        let Some((position, slot, checksum)) = newest else {
            findings.push(Finding::NoDirectorySlot { block });
            return;
        };
        digest ^= directory_digest_term(block, slot.generation, checksum);
        let mirrors = [pages[position % 2], pages[position % 2 + 2]];
        if page(image, geometry, mirrors[0]) != page(image, geometry, mirrors[1]) {
            findings.push(Finding::MirrorMismatch {
                block,
                pages: mirrors,
            });
        }
        for (index, entry) in slot.entries.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let current = entry.current_page();
            let intact = page(image, geometry, current)
                .is_some_and(|bytes| crc32fast::hash(bytes) == entry.content_checksum);
            if !intact {
                findings.push(Finding::ProtectedCopy {
                    id: block * per_block + index as u64,
                    page: current,
                });
            }
        }
        pages = slot.next_pages;
    }
    if digest != root.digest {
        findings.push(Finding::DirectoryDigest { copy_page });
    }
}
