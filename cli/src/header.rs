//! The decoded header of an internal page, for `dump`: the library's decoders (`format`, the
//! format's pure encode/decode functions) applied to the page's bytes; nothing is decoded here.

use std::fmt::Write as _;

use mappedpages::format::{
    Geometry, MetaPage, Superblock, decode_directory_slot, decode_group_slot, decode_table_page,
    slot_checksum_field,
};
use mappedpages::{PageUse, ReadOnlyPager};

const MIRRORS: [&str; 4] = ["X0", "X1", "Y0", "Y1"];

/// What `page` is, then its decoded header (or why it does not decode), as lines of text.
pub(crate) fn describe<const P: usize>(
    page: u64,
    role: PageUse,
    bytes: &[u8],
    reader: &ReadOnlyPager<P>,
) -> String {
    let geometry = Geometry::for_version(P, reader.format_version());
    let mut out = String::new();
    let decoded = match role {
        PageUse::Superblock => {
            let _ = writeln!(out, "page {page}: superblock");
            superblock(bytes)
        }
        PageUse::MetadataCopy { active } => {
            let copy = if page == 1 { "A" } else { "B" };
            let state = if active { "active" } else { "inactive" };
            let _ = writeln!(out, "page {page}: metadata copy {copy} ({state})");
            metadata(bytes, geometry)
        }
        PageUse::GroupSlot {
            group,
            slot,
            current,
        } => {
            let state = if current { "current" } else { "not current" };
            let _ = writeln!(
                out,
                "page {page}: bitmap slot {slot} of group {group} ({state})"
            );
            group_slot(bytes, geometry, group)
        }
        PageUse::DirectoryBlock {
            block,
            position,
            current,
        } => {
            let name = MIRRORS.get(usize::from(position)).copied().unwrap_or("?");
            let state = if current {
                "current slot"
            } else {
                "other slot"
            };
            let _ = writeln!(
                out,
                "page {page}: directory block {block}, page {name} ({state})"
            );
            directory(bytes, geometry, block, reader.page_count())
        }
        PageUse::GroupTable {
            table_page,
            slot,
            current,
        } => {
            let state = if current { "current" } else { "not current" };
            let _ = writeln!(
                out,
                "page {page}: slot {slot} of group table page {table_page} ({state})"
            );
            table(bytes, geometry, table_page)
        }
        PageUse::ProtectedCopy { id, copy, current } => {
            let state = if current { "committed" } else { "inactive" };
            let _ = writeln!(
                out,
                "page {page}: copy {copy} of protected page {id} ({state}); \
                 `dump --protected {id}` shows the committed copy checked against its CRC"
            );
            Ok(String::new())
        }
        other => {
            let _ = writeln!(out, "page {page}: {other:?}");
            Ok(String::new())
        }
    };
    match decoded {
        Ok(text) => out.push_str(&text),
        Err(why) => {
            let _ = writeln!(out, "  does not decode: {why}");
        }
    }
    out
}

fn table(bytes: &[u8], geometry: Geometry, table_page: u64) -> Result<String, String> {
    let (header, entries) =
        decode_table_page(bytes, geometry, table_page).map_err(|e| e.to_string())?;
    let first = table_page * geometry.table_entries_per_page();
    let mut out = format!(
        "  generation {}, {} entries (groups {first}..{}), checksum {:#010x}\n",
        header.generation,
        entries.len(),
        first + entries.len() as u64,
        slot_checksum_field(bytes).unwrap_or(0)
    );
    for (group, entry) in (first..).zip(&entries) {
        let _ = writeln!(
            out,
            "    - group {group}: slot {} pinned at generation {}, checksum {:#010x}, {} clear bits",
            entry.slot, entry.generation, entry.checksum, entry.free_pages
        );
    }
    Ok(out)
}

fn superblock(bytes: &[u8]) -> Result<String, String> {
    let sb = Superblock::decode(bytes).map_err(|e| e.to_string())?;
    Ok(format!(
        "  format version {}, page size {}, active copy {} (page {}), generation {}, \
         copy checksum {:#010x}\n",
        sb.version,
        sb.page_size,
        sb.active_meta,
        sb.active_meta.page(),
        sb.active_generation,
        sb.active_meta_checksum
    ))
}

fn metadata(bytes: &[u8], geometry: Geometry) -> Result<String, String> {
    let meta = MetaPage::decode(bytes, geometry).map_err(|e| e.to_string())?;
    let mut out = format!(
        "  generation {}, page count {}, materialized groups {}, slot digest {:#018x}, \
         commit mode {}, checksum {:#010x}\n  log: {} entries\n",
        meta.generation,
        meta.page_count,
        meta.materialized_groups,
        meta.slot_digest,
        if meta.single_sync {
            "single-sync"
        } else {
            "flip"
        },
        MetaPage::checksum_field(bytes).unwrap_or(0),
        meta.log.len()
    );
    for entry in &meta.log {
        let _ = writeln!(
            out,
            "    - {:?} pages {}..{} ({})",
            entry.kind,
            entry.first_page,
            entry.end_page(),
            entry.page_count
        );
    }
    let root = meta.directory;
    let _ = writeln!(
        out,
        "  directory: {} blocks, digest {:#018x}, block 0 pages {:?}",
        root.block_count, root.digest, root.head_pages
    );
    Ok(out)
}

fn group_slot(bytes: &[u8], geometry: Geometry, group: u64) -> Result<String, String> {
    let (header, bitmap) = decode_group_slot(bytes, geometry, group).map_err(|e| e.to_string())?;
    let in_use: u32 = bitmap.iter().map(|byte| byte.count_ones()).sum();
    Ok(format!(
        "  generation {}, group {}, checksum {:#010x}, {in_use} of {} pages in use\n",
        header.generation,
        header.group,
        slot_checksum_field(bytes).unwrap_or(0),
        geometry.pages_per_group()
    ))
}

fn directory(
    bytes: &[u8],
    geometry: Geometry,
    block: u64,
    page_count: u64,
) -> Result<String, String> {
    let slot =
        decode_directory_slot(bytes, geometry, block, page_count).map_err(|e| e.to_string())?;
    let per_block = geometry.directory_entries_per_block();
    let in_use = slot.entries.iter().flatten().count();
    let mut out = format!(
        "  generation {}, block {}, checksum {:#010x}, next block pages {:?}, {in_use} of {} \
         entries in use\n",
        slot.generation,
        slot.block,
        slot_checksum_field(bytes).unwrap_or(0),
        slot.next_pages,
        slot.entries.len()
    );
    for (index, entry) in slot.entries.iter().enumerate() {
        let Some(entry) = entry else { continue };
        let _ = writeln!(
            out,
            "    - protected page {}: copies {} and {}, current copy {}, content generation {}, \
             crc {:#010x}",
            block * per_block + index as u64,
            entry.copies[0],
            entry.copies[1],
            entry.current,
            entry.content_generation,
            entry.content_checksum
        );
    }
    Ok(out)
}
