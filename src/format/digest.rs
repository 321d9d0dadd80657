//! The digest terms (SPEC.md §2.5 and §2.7): what a group's or a directory block's current slot
//! contributes to the metadata copy's slot digest or directory digest.

#[cfg(doc)]
use super::{DirectoryRoot, MetaPage};

/// The domain constant of bitmap group slots ("mappgdig").
const GROUP_DOMAIN: u64 = 0x6D61_7070_6764_6967;
/// The domain constant of directory slots ("mappgdir"), so a bitmap slot can never stand in for
/// a directory slot.
const DIRECTORY_DOMAIN: u64 = 0x6D61_7070_6764_6972;
/// The domain constant of group table pages ("mappgtbl"), format 3 (docs/scale-design.md §2.4).
const TABLE_DOMAIN: u64 = 0x6D61_7070_6774_626C;
/// The generation multiplier (the golden ratio in 64 bits).
const GENERATION_FACTOR: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `mix(mix(index ^ domain) ^ generation * GENERATION_FACTOR ^ checksum << 32)`.
fn term(domain: u64, index: u64, generation: u64, checksum: u32) -> u64 {
    mix64(
        mix64(index ^ domain)
            ^ generation.wrapping_mul(GENERATION_FACTOR)
            ^ (u64::from(checksum) << 32),
    )
}

/// The term a group's current slot contributes to [`MetaPage::slot_digest`]:
/// `mix(mix(group ^ 0x6D61_7070_6764_6967) ^ generation * 0x9E37_79B9_7F4A_7C15 ^ checksum << 32)`
/// with the splitmix64 finalizer as `mix` (wrapping arithmetic).
pub fn slot_digest_term(group: u64, generation: u64, checksum: u32) -> u64 {
    term(GROUP_DOMAIN, group, generation, checksum)
}

/// The term a directory block's current slot contributes to [`DirectoryRoot::digest`]: like
/// [`slot_digest_term`] with the block index in place of the group and another constant
/// (`0x6D61_7070_6764_6972`), so a bitmap slot can never stand in for a directory slot.
pub fn directory_digest_term(block: u64, generation: u64, checksum: u32) -> u64 {
    term(DIRECTORY_DOMAIN, block, generation, checksum)
}

/// The term a table page's current slot contributes to format 3's table digest `T`
/// (docs/scale-design.md §2.4; not written yet): like [`slot_digest_term`] with the table page
/// index in place of the group and another constant (`0x6D61_7070_6774_626C`, "mappgtbl").
pub fn table_digest_term(table_page: u64, generation: u64, checksum: u32) -> u64 {
    term(TABLE_DOMAIN, table_page, generation, checksum)
}
