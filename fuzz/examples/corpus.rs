//! Seed corpus generator and corpus statistics for the mappedpages fuzz targets.
//!
//! ```sh
//! cargo run --release --manifest-path fuzz/Cargo.toml --example corpus -- gen    # rewrites fuzz/corpus/
//! cargo run --release --manifest-path fuzz/Cargo.toml --example corpus -- stats recovery DIR
//! ```
//!
//! `gen` is deterministic. Every seed it writes is also run through its target here (without
//! libFuzzer), so a seed that finds something fails the generator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use mappedpages::format::{
    DIRECTORY_MAGIC, GROUP_MAGIC, Geometry, META_MAGIC, SUPERBLOCK_RECORD_BYTES,
};
use mappedpages_fuzz::format::{Decoder, FormatInput};
use mappedpages_fuzz::open_image::{OpenInput, base_images};
use mappedpages_fuzz::recovery::{
    self, CrashChoice, Extra, FuzzOp, KeepsChoice, PageSize, RecoveryInput,
};

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_bytes(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len).map(|_| splitmix64(state) as u8).collect()
}

/// The bytes `arbitrary` decodes into `input` (the inverse of the derived decoders: an enum
/// variant is a u32 `v` with `v * variants >> 32 == index`, a `Vec` element follows a byte with
/// its low bit set, an `Option` is a bool then the value, integers are little-endian).
fn encode_recovery(input: &RecoveryInput) -> Vec<u8> {
    fn variant(out: &mut Vec<u8>, index: u64, count: u64) {
        let v = (index << 32).div_ceil(count);
        out.extend_from_slice(&(v as u32).to_le_bytes());
    }
    let mut out = Vec::new();
    variant(&mut out, (input.page_size == PageSize::K4) as u64, 2);
    let c = &input.crash;
    out.extend_from_slice(&c.sync.to_le_bytes());
    out.push(c.sector_4k as u8);
    out.push(c.durable_length as u8);
    for &byte in &c.mask {
        out.push(1);
        out.push(byte);
    }
    out.push(0);
    out.push(c.rest_kept as u8);
    match c.recovery {
        Some((rs, sub)) => {
            out.push(1);
            out.push(rs);
            out.extend_from_slice(&sub.to_le_bytes());
        }
        None => out.push(0),
    }
    match input.extra {
        None => out.push(0),
        Some(Extra::FailedSync {
            sync,
            keeps,
            kept_all,
            durable_length,
        }) => {
            out.push(1);
            variant(&mut out, 0, 4);
            out.extend_from_slice(&sync.to_le_bytes());
            variant(&mut out, keeps as u64, 3);
            out.push(kept_all as u8);
            out.push(durable_length as u8);
        }
        Some(Extra::FailedGrowth { growth }) => {
            out.push(1);
            variant(&mut out, 1, 4);
            out.push(growth);
        }
        Some(Extra::Chain {
            second_sync,
            second_subset,
            durable_length,
        }) => {
            out.push(1);
            variant(&mut out, 2, 4);
            out.extend_from_slice(&second_sync.to_le_bytes());
            out.push(second_subset);
            out.push(durable_length as u8);
        }
        Some(Extra::Media {
            target,
            field,
            zero_sector,
        }) => {
            out.push(1);
            variant(&mut out, 3, 4);
            out.extend_from_slice(&target.to_le_bytes());
            out.push(field);
            out.push(zero_sector as u8);
        }
    }
    for op in &input.ops {
        out.push(1);
        match *op {
            FuzzOp::Alloc => variant(&mut out, 0, 13),
            FuzzOp::Free(rank) => {
                variant(&mut out, 1, 13);
                out.extend_from_slice(&rank.to_le_bytes());
            }
            FuzzOp::AllocBulk(n) => {
                variant(&mut out, 2, 13);
                out.push(n);
            }
            FuzzOp::FreeBulk { start, step, count } => {
                variant(&mut out, 3, 13);
                out.extend_from_slice(&[start, step, count]);
            }
            FuzzOp::AllocProtected => variant(&mut out, 4, 13),
            FuzzOp::AllocProtectedBulk(n) => {
                variant(&mut out, 5, 13);
                out.push(n);
            }
            FuzzOp::Write {
                rank,
                offset,
                len,
                value,
            } => {
                variant(&mut out, 6, 13);
                out.extend_from_slice(&rank.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                out.push(value);
            }
            FuzzOp::WriteDiscarded {
                rank,
                offset,
                value,
            } => {
                variant(&mut out, 7, 13);
                out.extend_from_slice(&rank.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                out.push(value);
            }
            FuzzOp::FreeProtected(rank) => {
                variant(&mut out, 8, 13);
                out.extend_from_slice(&rank.to_le_bytes());
            }
            FuzzOp::FreeProtectedBulk { start, step, count } => {
                variant(&mut out, 9, 13);
                out.extend_from_slice(&[start, step, count]);
            }
            FuzzOp::AllocWith(n) => {
                variant(&mut out, 10, 13);
                out.push(n);
            }
            FuzzOp::Rewrite(rank) => {
                variant(&mut out, 11, 13);
                out.extend_from_slice(&rank.to_le_bytes());
            }
            FuzzOp::RewriteAttached(rank) => {
                variant(&mut out, 12, 13);
                out.extend_from_slice(&rank.to_le_bytes());
            }
        }
    }
    let decoded = decode_recovery(&out).expect("decodes");
    assert_eq!(
        format!("{decoded:?}"),
        format!("{input:?}"),
        "encoder out of step with the decoder"
    );
    out
}

/// Hand-made recovery seeds: workloads that grow the file, put many sectors in flight, fold
/// the log, cross a directory block; each crashed where it matters.
fn designed_recovery_seeds() -> Vec<(&'static str, RecoveryInput)> {
    use FuzzOp::*;
    let crash = |sync: u16, mask: Vec<u8>| CrashChoice {
        sync,
        sector_4k: false,
        durable_length: false,
        mask,
        rest_kept: true,
        recovery: None,
    };
    let regular_growth = vec![
        AllocBulk(150),
        Free(3),
        Free(7),
        Alloc,
        FreeBulk {
            start: 1,
            step: 3,
            count: 40,
        },
        AllocBulk(120),
        Free(60),
        FreeBulk {
            start: 0,
            step: 2,
            count: 30,
        },
        AllocBulk(100),
        Alloc,
    ];
    // Eight written pages freed and their backing pages reused by one bulk allocation, which
    // zeroes them: at 1 KiB 16 sectors in flight, at 4 KiB 64 (beyond crashsim's exhaustive 14).
    let mut protected_wide = vec![AllocProtected, Alloc, AllocProtectedBulk(11)];
    protected_wide.extend((0..8).map(|rank| Write {
        rank,
        offset: 0,
        len: 4096,
        value: 0x40 + rank as u8,
    }));
    protected_wide.extend([
        WriteDiscarded {
            rank: 3,
            offset: 10,
            value: 0xEE,
        },
        Write {
            rank: 9,
            offset: 1000,
            len: 600,
            value: 0x33,
        },
        FreeProtectedBulk {
            start: 0,
            step: 1,
            count: 12,
        },
        AllocProtectedBulk(12),
        Free(0),
        FreeProtected(4),
        Alloc,
    ]);
    // Pages filled in their commit, written again right away (settling) and later, freed and
    // reused, a bulk fill into fragmented free space (more runs than a 1 KiB copy's data
    // checks hold: the fallback), and two pages changed in place and attached to a commit.
    let filled = vec![
        AllocWith(0),
        Rewrite(0),
        AllocWith(6),
        AllocWith(0),
        Rewrite(2),
        Free(1),
        AllocWith(40),
        FreeBulk {
            start: 4,
            step: 2,
            count: 30,
        },
        AllocWith(30),
        Rewrite(9),
        RewriteAttached(3),
        RewriteAttached(5),
        AllocWith(0),
        AllocWith(0),
    ];
    let mut seeds = vec![
        (
            "designed-1k-filled",
            RecoveryInput {
                page_size: PageSize::K1,
                crash: crash(3, vec![0x5A; 4]),
                extra: None,
                ops: filled.clone(),
            },
        ),
        (
            "designed-4k-filled-media",
            RecoveryInput {
                page_size: PageSize::K4,
                crash: crash(0, vec![]),
                extra: Some(Extra::Media {
                    target: 7,
                    field: 3,
                    zero_sector: false,
                }),
                ops: filled.clone(),
            },
        ),
        (
            "designed-1k-regular-growth",
            RecoveryInput {
                page_size: PageSize::K1,
                crash: crash(0, vec![0x55; 8]),
                extra: None,
                ops: regular_growth.clone(),
            },
        ),
        (
            "designed-4k-regular-growth",
            RecoveryInput {
                page_size: PageSize::K4,
                crash: CrashChoice {
                    sector_4k: true,
                    durable_length: true,
                    ..crash(0, vec![0x0F; 4])
                },
                extra: None,
                ops: regular_growth.clone(),
            },
        ),
        (
            "designed-1k-protected-wide",
            RecoveryInput {
                page_size: PageSize::K1,
                crash: crash(0, vec![0xA5; 16]),
                extra: None,
                ops: protected_wide.clone(),
            },
        ),
        (
            "designed-4k-protected-wide",
            RecoveryInput {
                page_size: PageSize::K4,
                crash: CrashChoice {
                    recovery: Some((0, 3)),
                    ..crash(0, vec![0x3C; 16])
                },
                extra: None,
                ops: protected_wide.clone(),
            },
        ),
        (
            "designed-1k-protected-failed-sync",
            RecoveryInput {
                page_size: PageSize::K1,
                crash: crash(0, vec![]),
                extra: Some(Extra::FailedSync {
                    sync: 5,
                    keeps: KeepsChoice::Seeded,
                    kept_all: true,
                    durable_length: false,
                }),
                ops: protected_wide.clone(),
            },
        ),
        (
            "designed-1k-regular-failed-growth",
            RecoveryInput {
                page_size: PageSize::K1,
                crash: crash(0, vec![]),
                extra: Some(Extra::FailedGrowth { growth: 2 }),
                ops: regular_growth.clone(),
            },
        ),
        (
            "designed-1k-regular-chain",
            RecoveryInput {
                page_size: PageSize::K1,
                // The chain's root keeps none of its in-flight sectors (`rest_kept`).
                crash: CrashChoice {
                    rest_kept: false,
                    ..crash(9, vec![])
                },
                extra: Some(Extra::Chain {
                    second_sync: 3,
                    second_subset: 1,
                    durable_length: false,
                }),
                ops: regular_growth.clone(),
            },
        ),
        (
            // The root keeps every sector in flight before sync 12, the first of a commit: the
            // commit is half done (its first barrier's writes on disk, the superblock not), and
            // recovery must scrub its leftovers (SPEC.md §4.3) before the continuation's commits
            // reuse the generation; the second crash, nothing kept, shows it.
            "designed-1k-regular-chain-half-done",
            RecoveryInput {
                page_size: PageSize::K1,
                crash: crash(12, vec![]),
                extra: Some(Extra::Chain {
                    second_sync: 2,
                    second_subset: 0,
                    durable_length: false,
                }),
                ops: regular_growth.clone(),
            },
        ),
        (
            "designed-4k-protected-chain",
            RecoveryInput {
                page_size: PageSize::K4,
                crash: crash(14, vec![]),
                extra: Some(Extra::Chain {
                    second_sync: 7,
                    second_subset: 2,
                    durable_length: true,
                }),
                ops: protected_wide.clone(),
            },
        ),
        (
            "designed-1k-protected-media",
            RecoveryInput {
                page_size: PageSize::K1,
                crash: crash(20, vec![]),
                extra: Some(Extra::Media {
                    target: 1,
                    field: 3,
                    zero_sector: false,
                }),
                ops: protected_wide.clone(),
            },
        ),
        (
            "designed-1k-regular-media",
            RecoveryInput {
                page_size: PageSize::K1,
                crash: crash(12, vec![]),
                extra: Some(Extra::Media {
                    target: 3,
                    field: 0,
                    zero_sector: true,
                }),
                ops: regular_growth,
            },
        ),
    ];
    // Crash each crash seed at the sync with the most sectors in flight.
    for (_, input) in seeds.iter_mut().filter(|(_, i)| i.extra.is_none()) {
        let syncs = recovery::run(input).syncs as u16;
        let best = (0..=syncs)
            .max_by_key(|&sync| {
                let mut probe = input.clone();
                probe.crash.sync = sync;
                probe.crash.recovery = None;
                recovery::run(&probe).in_flight
            })
            .expect("syncs");
        input.crash.sync = best;
    }
    seeds
}

fn corpus_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    for entry in std::fs::read_dir(&dir).expect("read corpus dir") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove old seed");
    }
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> usize {
    std::fs::write(dir.join(name), bytes).expect("write seed");
    bytes.len()
}

fn decode_recovery(bytes: &[u8]) -> Option<RecoveryInput> {
    RecoveryInput::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

/// Features a recovery seed is chosen for.
fn recovery_features(input: &RecoveryInput, summary: &recovery::Summary) -> Vec<&'static str> {
    let mut features = Vec::new();
    let ops = &input.ops[..input.ops.len().min(recovery::MAX_OPS)];
    let protected = ops.iter().any(|op| {
        !matches!(
            op,
            FuzzOp::Alloc | FuzzOp::Free(_) | FuzzOp::AllocBulk(_) | FuzzOp::FreeBulk { .. }
        )
    });
    features.push(match input.page_size {
        PageSize::K1 => "1k",
        PageSize::K4 => "4k",
    });
    features.push(if protected { "protected" } else { "regular" });
    if summary.growths > 1 {
        features.push("growth");
    }
    match input.extra {
        Some(Extra::FailedSync { .. }) => features.push("failed-sync"),
        Some(Extra::FailedGrowth { .. }) => features.push("failed-growth"),
        Some(Extra::Chain { .. }) => features.push("chain"),
        Some(Extra::Media { .. }) => features.push("media"),
        None if summary.replayed => features.push("recovery-crash"),
        None => features.push("crash"),
    }
    if summary.in_flight > 14 {
        features.push("wide");
    }
    features
}

fn gen_recovery() -> usize {
    let dir = corpus_dir("recovery");
    let mut state = 0x5EED_0001u64;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    let mut tries = 0;
    for (name, input) in designed_recovery_seeds() {
        let bytes = encode_recovery(&input);
        let summary = recovery::run(&input);
        let key = recovery_features(&input, &summary).join("-");
        println!(
            "  {name}: {key}, {} syncs, {} in flight",
            summary.syncs, summary.in_flight
        );
        total += write(&dir, name, &bytes);
    }
    while seen.len() < 20 && tries < 20_000 {
        tries += 1;
        let len = 48 + (splitmix64(&mut state) % 400) as usize;
        let bytes = random_bytes(&mut state, len);
        let Some(input) = decode_recovery(&bytes) else {
            continue;
        };
        if input.ops.len() < 6 {
            continue;
        }
        let summary = recovery::run(&input);
        if summary.syncs < 8 {
            continue;
        }
        let key = recovery_features(&input, &summary).join("-");
        if seen.contains_key(&key) {
            continue;
        }
        seen.insert(key.clone(), bytes.len());
        total += write(&dir, &format!("seed-{key}"), &bytes);
    }
    println!(
        "recovery: {} seeds ({tries} tries), {total} bytes",
        seen.len()
    );
    for key in seen.keys() {
        println!("  {key}");
    }
    total
}

fn gen_open_image() -> usize {
    let dir = corpus_dir("open_image");
    let mut total = 0;
    for page_size in [1024, 4096] {
        for (name, image) in base_images(page_size) {
            // Raw images: of the 4 KiB ones only the fresh image (64 KiB); structured inputs reach the
            // others.
            if page_size == 4096 && name != "fresh" {
                continue;
            }
            let bytes = OpenInput::raw_bytes(page_size, image);
            mappedpages_fuzz::open_image::run(&input_of(&bytes));
            total += write(&dir, &format!("raw-{}k-{name}", page_size / 1024), &bytes);
        }
    }
    // Structured inputs: random mutation lists over every base image.
    let mut state = 0x5EED_0002u64;
    for index in 0..24 {
        let len = 8 + (splitmix64(&mut state) % 120) as usize;
        let mut bytes = vec![1u8];
        bytes.extend(random_bytes(&mut state, len));
        let input = input_of(&bytes);
        mappedpages_fuzz::open_image::run(&input);
        total += write(&dir, &format!("structured-{index:02}"), &bytes);
    }
    println!("open_image: {total} bytes");
    total
}

fn input_of(bytes: &[u8]) -> OpenInput {
    OpenInput::arbitrary_take_rest(Unstructured::new(bytes)).expect("open input")
}

fn gen_format() -> usize {
    let dir = corpus_dir("format");
    let mut total = 0;
    // Real pages taken from a worked 1 KiB image: superblock, both metadata copies, a group
    // slot, a directory slot.
    let image = &base_images(1024)[1].1;
    let p = 1024;
    let geometry = Geometry::new(p);
    let page = |n: usize| image[n * p..(n + 1) * p].to_vec();
    let mut seeds: Vec<(String, FormatInput)> = vec![
        (
            "superblock".into(),
            FormatInput {
                decoder: Decoder::Superblock,
                page_size: p,
                repair: false,
                expected: 0,
                page_count: 0,
                bytes: image[..SUPERBLOCK_RECORD_BYTES].to_vec(),
            },
        ),
        (
            "meta-a".into(),
            FormatInput {
                decoder: Decoder::Meta,
                page_size: p,
                repair: false,
                expected: 0,
                page_count: 0,
                bytes: page(1),
            },
        ),
        (
            "meta-b".into(),
            FormatInput {
                decoder: Decoder::Meta,
                page_size: p,
                repair: true,
                expected: 0,
                page_count: 0,
                bytes: page(2),
            },
        ),
    ];
    let pages = image.len() / p;
    for n in 3..pages {
        let bytes = page(n);
        if bytes[..8] == GROUP_MAGIC && !seeds.iter().any(|(name, _)| name == "group") {
            seeds.push((
                "group".into(),
                FormatInput {
                    decoder: Decoder::GroupSlot,
                    page_size: p,
                    repair: false,
                    expected: geometry.group_of(n as u64),
                    page_count: 0,
                    bytes,
                },
            ));
        } else if bytes[..8] == DIRECTORY_MAGIC
            && !seeds.iter().any(|(name, _)| name == "directory")
        {
            seeds.push((
                "directory".into(),
                FormatInput {
                    decoder: Decoder::DirectorySlot,
                    page_size: p,
                    repair: false,
                    expected: 0,
                    page_count: pages as u64,
                    bytes,
                },
            ));
        }
    }
    assert!(image[p..p + 8] == META_MAGIC);
    // Short repaired records of every decoder at 4 KiB (the decoders pad them).
    for decoder in [Decoder::Meta, Decoder::GroupSlot, Decoder::DirectorySlot] {
        seeds.push((
            format!("{decoder:?}-4k-short").to_lowercase(),
            FormatInput {
                decoder,
                page_size: 4096,
                repair: true,
                expected: 0,
                page_count: 64,
                bytes: vec![0; 40],
            },
        ));
    }
    seeds.extend(format3_seeds());
    for (name, input) in &seeds {
        mappedpages_fuzz::format::run(input);
        total += write(&dir, &format!("seed-{name}"), &input.to_bytes());
    }
    println!("format: {} seeds, {total} bytes", seeds.len());
    total
}

/// Format 3 is not written by the pager yet: a group table page encoded here (three entries,
/// one of them on slot 1) and table layout inputs at a crossing extent's pages.
fn format3_seeds() -> Vec<(String, FormatInput)> {
    use mappedpages::format::{TableEntry, TablePageHeader, encode_table_page};
    let p = 1024;
    let geometry = Geometry::new(p);
    let entries: Vec<TableEntry> = (0..3)
        .map(|i| TableEntry {
            generation: 2 + i,
            checksum: 0x1234_5678 ^ i as u32,
            slot: (i % 2) as u8,
            free_pages: 7000 + i as u32,
        })
        .collect();
    let header = TablePageHeader {
        generation: 4,
        index: 5,
    };
    let mut page = vec![0u8; p];
    encode_table_page(geometry, header, &entries, &mut page);
    let table = |name: &str, repair, bytes| {
        let input = FormatInput {
            decoder: Decoder::GroupTable,
            page_size: p,
            repair,
            expected: 5,
            page_count: 0,
            bytes,
        };
        (name.to_string(), input)
    };
    let layout = |name: String, page_number: u64, table_page: u64| {
        let input = FormatInput {
            decoder: Decoder::TableLayout,
            page_size: p,
            repair: false,
            expected: page_number,
            page_count: table_page,
            bytes: Vec::new(),
        };
        (name, input)
    };
    // Extent 12 is the first at 1 KiB to cross a group boundary (8,192 pages).
    let crossing_first = geometry.extent_page(12, 0);
    let crossing_after = geometry.extent_page(12, geometry.pages_per_group() - 2);
    vec![
        table("table", false, page),
        table("table-short", true, vec![0; 40]),
        layout("layout-first".into(), 5, 0),
        layout("layout-crossing".into(), crossing_first, 4095),
        layout("layout-crossed".into(), crossing_after - 1, 4095 + 4000),
    ]
}

fn stats_recovery(dir: &Path) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut checked: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut files = 0;
    let (mut syncs, mut in_flight_max, mut wide) = (0u64, 0usize, 0usize);
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        let Some(input) = decode_recovery(&bytes) else {
            continue;
        };
        files += 1;
        let summary = recovery::run(&input);
        syncs += summary.syncs;
        in_flight_max = in_flight_max.max(summary.in_flight);
        wide += usize::from(summary.in_flight > 14);
        for feature in recovery_features(&input, &summary) {
            *counts.entry(feature.to_string()).or_default() += 1;
        }
        let kind = summary.case.split('"').nth(3).unwrap_or("none").to_string();
        let entry = checked.entry(kind).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += usize::from(summary.checks > 0);
    }
    println!(
        "{files} inputs, mean syncs {:.1}, max in-flight sectors {in_flight_max}, {wide} with > 14 in flight",
        syncs as f64 / files.max(1) as f64
    );
    for (feature, count) in counts {
        println!("  {feature:<16} {count}");
    }
    println!("judged cases (with a Scenario::check call / all):");
    for (kind, (all, with_check)) in checked {
        println!("  {kind:<16} {with_check}/{all}");
    }
}

fn read_dir_files(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| std::fs::read(entry.expect("entry").path()).expect("read"))
        .collect()
}

fn stats_format(dir: &Path) {
    use mappedpages::format::{MetaPage, Superblock, decode_directory_slot, decode_group_slot};
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for bytes in read_dir_files(dir) {
        let Some(input) = FormatInput::from_bytes(&bytes) else {
            continue;
        };
        mappedpages_fuzz::format::run(&input);
        // Decode again as the target does, to count acceptances.
        let mut page = input.bytes.clone();
        let p = input.page_size;
        let end = if input.decoder == Decoder::Superblock {
            SUPERBLOCK_RECORD_BYTES
        } else {
            p
        };
        if input.repair {
            if page.len() < end {
                page.resize(end, 0);
            }
            let magic = match input.decoder {
                Decoder::Superblock => mappedpages::format::SUPERBLOCK_MAGIC,
                Decoder::Meta => META_MAGIC,
                Decoder::GroupSlot => GROUP_MAGIC,
                Decoder::DirectorySlot => DIRECTORY_MAGIC,
                Decoder::GroupTable => mappedpages::format::TABLE_MAGIC,
                Decoder::TableLayout => [0; 8],
            };
            page[..8].copy_from_slice(&magic);
            let crc = crc32fast::hash(&page[12..end]);
            page[8..12].copy_from_slice(&crc.to_le_bytes());
        }
        let g = Geometry::new(p);
        let accepted = match input.decoder {
            Decoder::Superblock => Superblock::decode(&page).is_ok(),
            Decoder::Meta => {
                let format_3 = page.get(52).is_some_and(|flags| flags & 2 != 0);
                let g = if format_3 {
                    Geometry::with_group_table(p)
                } else {
                    g
                };
                MetaPage::decode(&page, g).is_ok()
            }
            Decoder::GroupSlot => decode_group_slot(&page, g, input.expected).is_ok(),
            Decoder::DirectorySlot => {
                decode_directory_slot(&page, g, input.expected, input.page_count).is_ok()
            }
            Decoder::GroupTable => {
                mappedpages::format::decode_table_page(&page, g, input.expected).is_ok()
            }
            Decoder::TableLayout => g
                .table_slot_at(input.expected % g.max_page_count())
                .is_some(),
        };
        let entry = counts.entry(format!("{:?}", input.decoder)).or_default();
        entry.0 += 1;
        entry.1 += usize::from(accepted);
    }
    for (decoder, (total, accepted)) in counts {
        println!("  {decoder:<14} {total:>6} inputs, {accepted:>6} accepted (and round-tripped)");
    }
}

fn stats_open_image(dir: &Path) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for bytes in read_dir_files(dir) {
        let input = input_of(&bytes);
        let (mode, page_size, image) = match &input {
            OpenInput::Raw { page_4k, image } => {
                ("raw", if *page_4k { 4096 } else { 1024 }, image.clone())
            }
            OpenInput::Structured(s) => {
                let page_size = if s.page_4k { 4096 } else { 1024 };
                let bases = base_images(page_size);
                let mut image = bases[usize::from(s.base) % bases.len()].1.clone();
                for &m in &s.mutations {
                    mappedpages_fuzz::open_image::apply(&mut image, page_size, m);
                }
                ("structured", page_size, image)
            }
        };
        mappedpages_fuzz::open_image::run(&input);
        let result = if page_size == 4096 {
            mappedpages::Pager::<4096, mappedpages::SimStorage>::open_in(
                mappedpages::SimStorage::from_image(image),
            )
            .map(|p| format!("{:?}", p.recovery_decision()))
        } else {
            mappedpages::Pager::<1024, mappedpages::SimStorage>::open_in(
                mappedpages::SimStorage::from_image(image),
            )
            .map(|p| format!("{:?}", p.recovery_decision()))
        };
        let outcome = match result {
            Ok(decision) => format!("opens: {decision}"),
            Err(error) => {
                let debug = format!("{error:?}");
                format!(
                    "error: {}",
                    debug.split([' ', '(', '{']).next().unwrap_or("")
                )
            }
        };
        *counts.entry(format!("{mode:<10} {outcome}")).or_default() += 1;
    }
    for (outcome, count) in counts {
        println!("  {count:>6}  {outcome}");
    }
}

fn main() {
    // Activates the mutant named by MAPPEDPAGES_FUZZ_MUTANT (builds with --features mutants).
    mappedpages_fuzz::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen"] => {
            let total = gen_recovery() + gen_open_image() + gen_format();
            println!("total: {total} bytes");
        }
        ["stats", "recovery", dir] => stats_recovery(Path::new(dir)),
        ["stats", "format", dir] => stats_format(Path::new(dir)),
        ["stats", "open_image", dir] => stats_open_image(Path::new(dir)),
        _ => {
            eprintln!("usage: corpus gen | corpus stats recovery|open_image|format DIR");
            std::process::exit(2);
        }
    }
}
