//! End-to-end tests of the `mappedpages` binary on real files: output, JSON and exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, PoisonError};

use mappedpages::{Pager, ReadOnlyPager};

const P: usize = 4096;

/// The tests run one at a time. A child process forked by one test holds copies of every file
/// descriptor open in the test process until it execs, and with them the `flock` of a `Pager`
/// another test has open: that test's next open (or the tool's) would then see `Locked`.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mappedpages"))
        .args(args)
        .arg(file)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// A file of 4 KiB pages with three regular pages (page 5..=7 or wherever they land), one freed
/// again, and one protected page written once: several commits, so both metadata copies hold one.
fn populated(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("db.bin");
    let mut pager = Pager::<P>::create(&path).unwrap();
    let ids = pager.alloc_bulk(3).unwrap();
    pager.free(ids[1]).unwrap();
    let protected = pager.alloc_protected().unwrap();
    let mut writer = protected.get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut()[..3].copy_from_slice(b"abc");
    writer.commit().unwrap();
    drop(pager);
    path
}

#[test]
fn info_on_a_clean_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    let output = run(&["info"], &path);
    let text = stdout(&output);
    println!("{text}");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(text.contains("page size:            4096 bytes"), "{text}");
    assert!(text.contains("format version:       3"), "{text}");
    assert!(
        text.contains(&format!("page count:           {}\n", reader.page_count())),
        "{text}"
    );
    assert!(text.contains("allocated pages:      2\n"), "{text}");
    assert!(
        text.contains(&format!(
            "free pages:           {}\n",
            reader.free_page_count()
        )),
        "{text}"
    );
    assert!(text.contains("protected pages:      1\n"), "{text}");
    assert!(
        text.contains(&format!("generation:           {}\n", reader.generation())),
        "{text}"
    );
    assert!(text.contains("recovery decision:    Superblock"), "{text}");
    assert!(text.contains("planned repairs:      none"), "{text}");
    assert!(text.contains("last commit mode:     flip"), "{text}");
    let block = reader.directory_blocks()[0];
    assert!(
        text.contains(&format!(
            "directory blocks:     1 (pages X0, X1, Y0, Y1 of each)\n  - block 0: {}, {}, {}, {}\n",
            block[0], block[1], block[2], block[3]
        )),
        "{text}"
    );
    let committed = reader.page_count() * P as u64;
    assert!(
        text.contains(&format!("committed length:     {committed} bytes (equal)")),
        "{text}"
    );
    drop(reader);

    let output = run(&["info", "--json"], &path);
    let json = stdout(&output);
    assert_eq!(output.status.code(), Some(0));
    for field in [
        "\"page_size\":4096",
        "\"format_version\":3",
        "\"allocated_pages\":2",
        "\"protected_pages\":1",
        "\"recovery_decision\":\"Superblock\"",
        "\"planned_repairs\":[]",
        "\"last_commit_mode\":\"flip\"",
        &format!(
            "\"directory_blocks\":[[{},{},{},{}]]",
            block[0], block[1], block[2], block[3]
        ),
        &format!("\"committed_len\":{committed}"),
        &format!("\"file_len\":{committed}"),
    ] {
        assert!(json.contains(field), "{field} missing in {json}");
    }
}

#[test]
fn check_on_a_clean_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let before = std::fs::read(&path).unwrap();
    let output = run(&["check"], &path);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("no findings"), "{text}");
    assert!(!text.contains("finding:"), "{text}");
    let output = run(&["check", "--json"], &path);
    assert_eq!(output.status.code(), Some(0));
    let json = stdout(&output);
    assert!(json.contains("\"findings\":[]"), "{json}");
    assert!(json.contains("\"clean\":true"), "{json}");
    assert!(std::fs::read(&path).unwrap() == before, "check wrote");
}

#[test]
fn pages_on_a_clean_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    let allocated: Vec<u64> = reader.iter_allocated_pages().map(|id| id.raw()).collect();
    let protected: Vec<u64> = reader
        .iter_allocated_protected_pages()
        .map(|id| id.raw())
        .collect();
    let free = reader.free_page_ranges();
    drop(reader);
    assert_eq!(allocated.len(), 2);
    // The freed page lies between the two allocated ones: they are not one run.
    assert!(allocated[1] > allocated[0] + 1, "{allocated:?}");
    let output = run(&["pages"], &path);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        text.contains(&format!(
            "allocated pages (2): {}, {}\n",
            allocated[0], allocated[1]
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("protected pages (1, by id): {}\n", protected[0])),
        "{text}"
    );
    let free_count: u64 = free.iter().map(|range| range.end - range.start).sum();
    assert!(
        text.contains(&format!("free pages ({free_count}): ")),
        "{text}"
    );
    // Internal: the superblock, metadata copies and group 0's slot pages (0-4) and the protected
    // page's backing pages, and nothing allocated or free.
    assert!(text.contains("internal pages ("), "{text}");
    let internal_line = text
        .lines()
        .find(|line| line.starts_with("internal pages ("))
        .unwrap();
    assert!(internal_line.contains("): 0-"), "{internal_line}");
    let internal_count: u64 = internal_line["internal pages (".len()..]
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    assert_eq!(
        internal_count,
        reader.page_count() - reader.allocated_page_count() - reader.free_page_count()
    );
    drop(reader);
    // The freed page is free again.
    assert!(free.iter().any(|range| range.contains(&(allocated[0] + 1))));

    let output = run(&["pages", "--json"], &path);
    let json = stdout(&output);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        json.contains(&format!(
            "\"allocated\":[{{\"first\":{},\"count\":1}},{{\"first\":{},\"count\":1}}]",
            allocated[0], allocated[1]
        )),
        "{json}"
    );
    assert!(
        json.contains(&format!(
            "\"protected\":[{{\"first\":{},\"count\":1}}]",
            protected[0]
        )),
        "{json}"
    );
}

#[test]
fn a_damaged_superblock_is_found_by_check_and_recovered_in_info() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let mut image = std::fs::read(&path).unwrap();
    image[20] ^= 0x10; // inside the superblock record: its CRC fails
    std::fs::write(&path, &image).unwrap();

    let output = run(&["check"], &path);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    assert!(text.contains("finding: superblock (page 0)"), "{text}");
    assert!(text.contains("1 finding\n"), "{text}");
    assert!(text.contains("rewrite the superblock"), "{text}");

    let output = run(&["check", "--json"], &path);
    assert_eq!(output.status.code(), Some(1));
    let json = stdout(&output);
    assert!(json.contains("\"clean\":false"), "{json}");
    assert!(
        json.contains("\"findings\":[\"superblock (page 0): "),
        "{json}"
    );
    assert!(
        json.contains("\"planned_repairs\":[{\"repair\":\"rewrite_superblock\"}]"),
        "{json}"
    );

    // The page size is still found (from the metadata copies), and info shows the recovered
    // state and the repair a read-write open would make.
    let output = run(&["info"], &path);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(text.contains("page size:            4096 bytes"), "{text}");
    assert!(
        text.contains("recovery decision:    NewestAfterCorruptSuperblock"),
        "{text}"
    );
    assert!(text.contains("  - rewrite the superblock"), "{text}");
    assert!(std::fs::read(&path).unwrap() == image, "the tool wrote");
}

#[test]
fn a_damaged_metadata_copy_is_found_by_check() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    // The older copy: damaging it keeps the file recoverable by the superblock's rule.
    let older = 3 - reader.active_metadata_page();
    drop(reader);
    let mut image = std::fs::read(&path).unwrap();
    image[older as usize * P + P / 2] ^= 0x10;
    std::fs::write(&path, &image).unwrap();
    let output = run(&["check"], &path);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    assert!(
        text.contains(&format!("finding: metadata copy (page {older}): ")),
        "{text}"
    );
    let output = run(&["info"], &path);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("recovery decision:    Superblock"));
}

#[test]
fn a_file_of_another_format_is_exit_2() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.bin");
    // Deterministic pseudo-random bytes (an xorshift), 64 KiB.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..65536)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    for command in ["info", "check", "pages"] {
        let output = run(&[command], &path);
        assert_eq!(output.status.code(), Some(2), "{command}");
        let message = stderr(&output);
        assert!(
            message.contains("random.bin") && message.contains("not a mappedpages file"),
            "{command}: {message}"
        );
        assert!(stdout(&output).is_empty(), "{command}");
    }
    let output = run(&["check", "--json"], &path);
    assert_eq!(output.status.code(), Some(2));
    let json = stdout(&output);
    assert!(
        json.starts_with("{\"file\":") && json.contains("\"error\":\"not a mappedpages file"),
        "{json}"
    );
}

#[test]
fn an_empty_file_is_exit_2() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.bin");
    std::fs::write(&path, b"").unwrap();
    for command in ["info", "check", "pages"] {
        let output = run(&[command], &path);
        assert_eq!(output.status.code(), Some(2), "{command}");
        let message = stderr(&output);
        assert!(
            message.contains("not a mappedpages file"),
            "{command}: {message}"
        );
    }
}

#[test]
fn a_directory_or_a_missing_file_is_exit_2() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for command in ["info", "check", "pages"] {
        let output = run(&[command], dir.path());
        assert_eq!(output.status.code(), Some(2), "{command}");
        let message = stderr(&output);
        assert!(
            message.starts_with(&format!("mappedpages: {}: ", dir.path().display())),
            "{command}: {message}"
        );
        let missing = dir.path().join("missing.bin");
        let output = run(&[command], &missing);
        assert_eq!(output.status.code(), Some(2), "{command}");
        assert!(
            stderr(&output).contains("missing.bin"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn a_file_held_by_a_writer_is_exit_2() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let writer = Pager::<P>::open(&path).unwrap();
    let output = run(&["check"], &path);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("lock"), "{}", stderr(&output));
    drop(writer);
    assert_eq!(run(&["check"], &path).status.code(), Some(0));
}

#[test]
fn the_page_size_is_read_from_the_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    for (name, size) in [("small.bin", 1024u64), ("large.bin", 1 << 16)] {
        let path = dir.path().join(name);
        match size {
            1024 => drop(Pager::<1024>::create(&path).unwrap()),
            _ => drop(Pager::<65536>::create(&path).unwrap()),
        }
        let output = run(&["info", "--json"], &path);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(
            stdout(&output).contains(&format!("\"page_size\":{size},")),
            "{}",
            stdout(&output)
        );
    }
}

fn run_args(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mappedpages"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn dump_shows_a_data_page_and_a_protected_page() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let mut pager = Pager::<P>::create(&path).unwrap();
    let id = pager.alloc().unwrap();
    id.get_mut(&mut pager).unwrap().as_bytes_mut()[..11].copy_from_slice(b"hello pages");
    pager.sync_page(id).unwrap();
    let protected = pager.alloc_protected().unwrap();
    let mut writer = protected.get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut()[16..21].copy_from_slice(b"safe!");
    writer.commit().unwrap();
    drop(pager);
    let file = path.to_str().unwrap();

    let output = run_args(&["dump", file, &id.raw().to_string()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        text,
        "00000000  68 65 6c 6c 6f 20 70 61  67 65 73 00 00 00 00 00  |hello pages.....|\n\
         00000010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n\
         *\n\
         00001000\n"
    );

    let output = run_args(&["dump", "--protected", file, &protected.raw().to_string()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        text.starts_with(
            "00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n\
             00000010  73 61 66 65 21 00"
        ),
        "{text}"
    );

    // Internal pages come with their decoded header, then the hex dump.
    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    let active = reader.active_metadata_page();
    let block = reader.directory_blocks()[0];
    let generation = reader.generation();
    drop(reader);
    let dump = |page: u64| {
        let output = run_args(&["dump", file, &page.to_string()]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        println!("{text}");
        assert!(text.contains("00000000  "), "{text}");
        text
    };
    let text = dump(0);
    assert!(text.starts_with("page 0: superblock\n"), "{text}");
    assert!(
        text.contains(&format!(
            "page size 4096, active copy {}",
            ["", "A", "B"][active as usize]
        )),
        "{text}"
    );
    let text = dump(active);
    assert!(text.contains(" (active)\n"), "{text}");
    assert!(
        text.contains(&format!("  generation {generation}, page count ")),
        "{text}"
    );
    assert!(text.contains("commit mode flip"), "{text}");
    assert!(text.contains("directory: 1 blocks"), "{text}");
    let text = dump(3);
    assert!(
        text.starts_with("page 3: bitmap slot 0 of group 0"),
        "{text}"
    );
    assert!(text.contains("pages in use"), "{text}");
    let text = dump(block[0]);
    assert!(
        text.starts_with(&format!("page {}: directory block 0, page X0", block[0])),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "    - protected page {}: copies ",
            protected.raw()
        )),
        "{text}"
    );
    // A never-written slot says so.
    let text = dump(block[3]);
    assert!(
        text.contains("does not decode") || text.contains("generation"),
        "{text}"
    );
    let free = ReadOnlyPager::<P>::open(&path).unwrap().free_page_ranges()[0].start;
    let output = run_args(&["dump", file, &free.to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!("page {free} is not allocated")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn dump_of_a_damaged_protected_page_fails_its_checksum() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.bin");
    let mut pager = Pager::<P>::create(&path).unwrap();
    let protected = pager.alloc_protected().unwrap();
    let mut writer = protected.get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut()[..4].copy_from_slice(b"data");
    writer.commit().unwrap();
    drop(pager);
    let before = std::fs::read(&path).unwrap();
    // The committed copy is the page holding "data" at its start.
    let page = before
        .chunks(P)
        .position(|page| page.starts_with(b"data"))
        .expect("the committed copy is in the file");
    let mut image = before.clone();
    image[page * P + 100] ^= 1;
    std::fs::write(&path, &image).unwrap();
    let file = path.to_str().unwrap();
    let output = run_args(&["dump", "--protected", file, &protected.raw().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).is_empty());
    let output = run(&["check"], &path);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains(&format!(
            "finding: protected page {}: committed copy (page {page}) fails its checksum",
            protected.raw()
        )),
        "{}",
        stdout(&output)
    );
}

/// A crash image from SimStorage (the durable state at the last barrier of an unfinished
/// commit): recovery plans a scrub; that is not damage, so `check` exits 0 and lists it.
#[test]
fn a_crash_image_has_planned_repairs_and_no_findings() {
    let _serial = serial();
    let mut storage = mappedpages::SimStorage::new();
    storage.record_sync_snapshots();
    let mut pager = Pager::<P, mappedpages::SimStorage>::create_in(storage).unwrap();
    pager.alloc_bulk(3).unwrap();
    let image = pager
        .storage()
        .sync_snapshots()
        .last()
        .unwrap()
        .durable_image();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.bin");
    std::fs::write(&path, &image).unwrap();
    let output = run(&["check"], &path);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("  - scrub page "), "{text}");
    assert!(text.contains("no findings"), "{text}");
    let output = run(&["info", "--json"], &path);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).contains("\"planned_repairs\":[{\"repair\":\"scrub_page\",\"page\":"),
        "{}",
        stdout(&output)
    );
    assert!(std::fs::read(&path).unwrap() == image, "the tool wrote");
}

/// Flips one bit in the middle of each of `pages`, runs `check`, and returns its output after
/// checking it exited 1 and left the file as it found it.
fn check_damaged(path: &Path, pages: &[usize]) -> String {
    let mut image = std::fs::read(path).unwrap();
    for &page in pages {
        image[page * P + P / 2] ^= 0x10;
    }
    std::fs::write(path, &image).unwrap();
    let output = run(&["check"], path);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    assert!(std::fs::read(path).unwrap() == image, "check wrote");
    text
}

#[test]
fn damaged_group_slots_are_each_reported() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    // Group 0's slot pages are 3 and 4 (SPEC.md §2.1); one never written holds nothing.
    let image = std::fs::read(&path).unwrap();
    let written: Vec<usize> = [3, 4]
        .into_iter()
        .filter(|&page| image[page * P..page * P + 8] != [0; 8])
        .collect();
    assert!(!written.is_empty());
    let text = check_damaged(&path, &written);
    for page in &written {
        assert!(
            text.contains(&format!(
                "finding: group 0: bitmap slot page {page}: checksum mismatch"
            )),
            "{text}"
        );
    }
    // The slot group 0's table entry pins is damaged (format 3 never takes the other one):
    // recovery refuses the file (group 0 is the last group, which open loads), and check says so.
    assert!(
        text.contains("(the slot its group table entry pins: damaged after its commit)"),
        "{text}"
    );
    assert!(
        text.contains("recovery decision: none (recovery refuses the file)"),
        "{text}"
    );
}

#[test]
fn damaged_directory_pages_are_each_reported() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let image = std::fs::read(&path).unwrap();
    let directory: Vec<usize> = image
        .chunks(P)
        .enumerate()
        .filter(|(_, page)| page.starts_with(b"MAPPGPD\x01"))
        .map(|(index, _)| index)
        .collect();
    assert!(!directory.is_empty());
    let text = check_damaged(&path, &directory);
    for page in &directory {
        assert!(
            text.contains(&format!("finding: directory block 0: page {page}: ")),
            "{text}"
        );
    }
}

/// `populated` with the metadata copy the superblock names damaged: recovery refuses it
/// ("restore from a backup"). Returns the path, the image and the active copy's page.
fn refused(dir: &tempfile::TempDir) -> (PathBuf, Vec<u8>, u64) {
    let path = populated(dir);
    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    let active = reader.active_metadata_page();
    drop(reader);
    let mut image = std::fs::read(&path).unwrap();
    image[active as usize * P + P / 2] ^= 0x10;
    std::fs::write(&path, &image).unwrap();
    assert!(matches!(
        Pager::<P>::open(&path),
        Err(mappedpages::MappedPageError::CorruptMetadata { .. })
    ));
    (path, image, active)
}

#[test]
fn rollback_is_a_dry_run_unless_told_yes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (path, image, active) = refused(&dir);
    for args in [&["rollback"][..], &["rollback", "--dry-run"]] {
        let output = run(args, &path);
        let text = stdout(&output);
        println!("{text}");
        assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
        assert!(text.contains("recovery refuses the file: "), "{text}");
        assert!(
            text.contains(&format!(
                "damaged: metadata copy {} (page {active})",
                ["", "A", "B"][active as usize]
            )),
            "{text}"
        );
        assert!(text.contains("loses 1 commit"), "{text}");
        assert!(text.contains("cannot be known"), "{text}");
        assert!(text.contains("dry run: nothing written"), "{text}");
        assert!(std::fs::read(&path).unwrap() == image, "a dry run wrote");
    }
    let output = run(&["check"], &path);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn rollback_yes_makes_the_older_copy_current() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (path, _, active) = refused(&dir);
    let output = run(&["rollback", "--yes"], &path);
    let text = stdout(&output);
    println!("{text}");
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(
        text.contains(&format!(
            "rolled back: metadata copy at page {}",
            3 - active
        )),
        "{text}"
    );
    // The file opens and checks clean; a second rollback has nothing to do (exit 3).
    let output = run(&["check"], &path);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let output = run(&["rollback"], &path);
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("nothing to roll back"),
        "{}",
        stderr(&output)
    );
    let reader = ReadOnlyPager::<P>::open(&path).unwrap();
    assert_eq!(reader.active_metadata_page(), 3 - active);
}

#[test]
fn rollback_of_a_clean_file_is_exit_3_and_of_two_damaged_copies_exit_1() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    let clean = std::fs::read(&path).unwrap();
    let output = run(&["rollback", "--yes"], &path);
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("nothing to roll back"),
        "{}",
        stderr(&output)
    );
    assert!(std::fs::read(&path).unwrap() == clean, "the tool wrote");

    std::fs::remove_file(&path).unwrap();
    let (path, mut image, active) = refused(&dir);
    image[(3 - active) as usize * P + P / 2] ^= 0x10; // the older copy too
    std::fs::write(&path, &image).unwrap();
    let output = run(&["rollback", "--yes"], &path);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stderr(&output);
    assert!(text.contains("rollback refused, nothing written"), "{text}");
    assert!(text.contains("damaged too"), "{text}");
    assert!(std::fs::read(&path).unwrap() == image, "the tool wrote");

    let other = dir.path().join("other.bin");
    std::fs::write(&other, vec![7u8; 8192]).unwrap();
    let output = run(&["rollback"], &other);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
}

#[test]
fn check_progress_goes_to_stderr_and_never_with_json() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = populated(&dir);
    // Forced, stderr not a terminal: plain lines on stderr, stdout as without it.
    let output = run(&["check", "--progress"], &path);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines = stderr(&output);
    assert!(lines.starts_with("checked 0/"), "{lines}");
    assert!(lines.contains("groups and directory blocks"), "{lines}");
    let total = lines.lines().last().unwrap().split('/').nth(1).unwrap();
    assert!(
        lines
            .lines()
            .last()
            .unwrap()
            .starts_with(&format!("checked {}", total.split(' ').next().unwrap())),
        "{lines}"
    );
    assert_eq!(stdout(&output), stdout(&run(&["check"], &path)));
    // A small file without --progress: nothing on stderr. With --json, --progress is refused.
    assert!(run(&["check"], &path).stderr.is_empty());
    let output = run(&["check", "--json", "--progress"], &path);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap refuses the combination"
    );
    assert!(output.stdout.is_empty());
}
