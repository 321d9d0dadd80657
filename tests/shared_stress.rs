//! Stress: real threads share one `SharedPager` (SPEC.md §3.10), on `SimStorage` and on a file.
//!
//! `THREADS` threads each run `OPS` seeded random operations: allocate (one or a few pages) and
//! fill the pages with a pattern naming the page, the thread and the operation, or allocate a
//! page filled before its commit (`alloc_with`: on a file, the group's leader prepares such
//! pages for writing first, SPEC.md §3.10 step 2); free some of
//! their own pages (one or several at once); allocate protected pages and rewrite them with
//! `write_protected`; free protected pages; read their pages back through page guards and through
//! one `read` guard; sync some pages. Each thread keeps a model of what it owns. At the end:
//!
//! * no page or protected id is owned by two threads (no id handed out twice);
//! * the pager's allocated pages and protected ids are exactly the union of the models (no id
//!   lost, none leaked);
//! * every page and protected page holds its owner's last pattern (contents intact);
//! * the group commits together acknowledged exactly the changes made;
//! * after `sync_all`, reopening (the file, or `SimStorage`'s durable image) finds the same.

use std::collections::BTreeMap;
use std::thread;

use mappedpages::{MmapStorage, PageId, Pager, ProtectedPageId, SharedPager, SimStorage, Storage};

const THREADS: usize = 8;
const OPS: usize = 200;
const P: usize = 4096;

/// What one thread owns: page → the tag of the pattern it last wrote.
#[derive(Default)]
struct Owned {
    regular: BTreeMap<u64, u8>,
    /// The key in the pattern of each regular page filled by `alloc_with` (whose fill does not
    /// know the page's id); every other page's key is its id.
    filled_keys: BTreeMap<u64, u64>,
    protected: BTreeMap<u64, u8>,
    /// Changes acknowledged (each call that changed allocation or protected content).
    changes: u64,
}

/// splitmix64, seeded per thread.
struct Rng(u64);

impl Owned {
    fn key(&self, page: u64) -> u64 {
        self.filled_keys.get(&page).copied().unwrap_or(page)
    }

    fn forget(&mut self, page: u64) {
        self.regular.remove(&page);
        self.filled_keys.remove(&page);
    }
}

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick(&mut self, map: &BTreeMap<u64, u8>) -> Option<u64> {
        if map.is_empty() {
            return None;
        }
        map.keys().nth(self.below(map.len())).copied()
    }
}

/// The pattern: the tag everywhere, then the page (or protected id) and the thread up front.
fn fill(bytes: &mut [u8], key: u64, thread: usize, tag: u8) {
    bytes.fill(tag);
    bytes[..8].copy_from_slice(&key.to_le_bytes());
    bytes[8] = thread as u8;
}

fn holds(bytes: &[u8], key: u64, thread: usize, tag: u8) -> bool {
    bytes[..8] == key.to_le_bytes()
        && bytes[8] == thread as u8
        && bytes[9..].iter().all(|&b| b == tag)
}

fn worker<S: Storage>(shared: &SharedPager<P, S>, thread: usize) -> Owned {
    let mut rng = Rng(0x5EED_0000 + thread as u64);
    let mut owned = Owned::default();
    for op in 0..OPS {
        let tag = (op % 250) as u8 + 1;
        match rng.below(10) {
            0 if rng.below(2) == 0 => {
                // The pattern written by the fill, before the commit (SPEC.md §3.6.1), with a key
                // of its own: the fill does not know the page's id.
                let key = u64::MAX - (thread * OPS + op) as u64;
                let id = shared
                    .alloc_with(move |page| fill(page.as_bytes_mut(), key, thread, tag))
                    .unwrap();
                assert!(
                    owned.regular.insert(id.raw(), tag).is_none(),
                    "{id:?} handed out twice"
                );
                owned.filled_keys.insert(id.raw(), key);
                owned.changes += 1;
            }
            0 | 1 => {
                let id = shared.alloc().unwrap();
                assert!(
                    owned.regular.insert(id.raw(), tag).is_none(),
                    "{id:?} handed out twice"
                );
                shared
                    .write_page(id, |page| fill(page.as_bytes_mut(), id.raw(), thread, tag))
                    .unwrap();
                if rng.below(8) == 0 {
                    shared.sync_page(id).unwrap();
                    owned.changes += 1; // a group-committed call too (it shares a barrier)
                }
                owned.changes += 1;
            }
            2 => {
                let ids = shared.alloc_bulk(1 + rng.below(4)).unwrap();
                for id in ids {
                    assert!(
                        owned.regular.insert(id.raw(), tag).is_none(),
                        "{id:?} twice"
                    );
                    shared
                        .write_page(id, |page| fill(page.as_bytes_mut(), id.raw(), thread, tag))
                        .unwrap();
                }
                owned.changes += 1;
            }
            3 => {
                if let Some(page) = rng.pick(&owned.regular) {
                    shared.free(PageId::from_raw(page)).unwrap();
                    owned.forget(page);
                    owned.changes += 1;
                }
            }
            4 => {
                let mut ids = Vec::new();
                for _ in 0..1 + rng.below(3) {
                    if let Some(page) = rng.pick(&owned.regular) {
                        owned.forget(page);
                        ids.push(PageId::from_raw(page));
                    }
                }
                if !ids.is_empty() {
                    shared.free_bulk(ids).unwrap();
                    owned.changes += 1;
                }
            }
            5 => {
                let id = shared.alloc_protected().unwrap();
                assert!(
                    owned.protected.insert(id.raw(), 0).is_none(),
                    "{id:?} twice"
                );
                owned.changes += 1;
                let raw = id.raw();
                shared
                    .write_protected(id, move |page| fill(page.as_bytes_mut(), raw, thread, tag))
                    .unwrap();
                owned.protected.insert(raw, tag);
                owned.changes += 1;
            }
            6 => {
                if let Some(raw) = rng.pick(&owned.protected) {
                    let id = ProtectedPageId::from_raw(raw);
                    shared
                        .write_protected(id, move |page| {
                            let bytes = page.as_bytes_mut();
                            // Starts from the committed content: the owner's last pattern.
                            assert_eq!(bytes[..8], raw.to_le_bytes());
                            fill(bytes, raw, thread, tag);
                        })
                        .unwrap();
                    owned.protected.insert(raw, tag);
                    owned.changes += 1;
                }
            }
            7 => {
                if let Some(raw) = rng.pick(&owned.protected) {
                    shared
                        .free_protected(ProtectedPageId::from_raw(raw))
                        .unwrap();
                    owned.protected.remove(&raw);
                    owned.changes += 1;
                }
            }
            8 => {
                if let Some(page) = rng.pick(&owned.regular) {
                    let guard = shared.page(PageId::from_raw(page)).unwrap();
                    let (key, tag) = (owned.key(page), owned.regular[&page]);
                    assert!(holds(guard.as_bytes(), key, thread, tag));
                }
                if let Some(raw) = rng.pick(&owned.protected) {
                    let guard = shared
                        .protected_page(ProtectedPageId::from_raw(raw))
                        .unwrap();
                    assert!(holds(guard.as_bytes(), raw, thread, owned.protected[&raw]));
                }
            }
            _ => {
                // Several pages through one guard.
                let pager = shared.read();
                for (&page, &tag) in owned.regular.iter().take(4) {
                    let id = PageId::<P>::from_raw(page);
                    assert!(pager.is_allocated(id));
                    let key = owned.key(page);
                    assert!(holds(id.get(&pager).unwrap().as_bytes(), key, thread, tag));
                }
            }
        }
    }
    owned
}

/// Every page and protected id → (owner, tag, key of its pattern), asserting that none has two
/// owners.
type Model = (
    BTreeMap<u64, (usize, u8, u64)>,
    BTreeMap<u64, (usize, u8, u64)>,
);

fn run<S: Storage + Send + Sync>(shared: &SharedPager<P, S>) -> Model {
    let owned: Vec<Owned> = thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| scope.spawn(move || worker(shared, thread)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut regular = BTreeMap::new();
    let mut protected = BTreeMap::new();
    let mut changes = 0;
    for (thread, owned) in owned.into_iter().enumerate() {
        for (&page, &tag) in &owned.regular {
            let previous = regular.insert(page, (thread, tag, owned.key(page)));
            assert!(previous.is_none(), "page {page} owned by two threads");
        }
        for (id, tag) in owned.protected {
            let previous = protected.insert(id, (thread, tag, id));
            assert!(previous.is_none(), "protected id {id} owned by two threads");
        }
        changes += owned.changes;
    }
    let stats = shared.stats();
    assert_eq!(
        stats.operations, changes,
        "every change in exactly one group commit"
    );
    println!(
        "{THREADS} threads x {OPS} ops: {} changes in {} group commits ({:.2} per commit)",
        changes,
        stats.commits,
        changes as f64 / stats.commits as f64
    );
    (regular, protected)
}

/// The pager holds exactly the model: allocated pages, protected ids and all their contents.
fn check<S: Storage>(pager: &Pager<P, S>, (regular, protected): &Model) {
    let listed: Vec<u64> = pager.iter_allocated_pages().map(|id| id.raw()).collect();
    assert_eq!(
        listed,
        regular.keys().copied().collect::<Vec<_>>(),
        "allocated pages"
    );
    let listed: Vec<u64> = pager
        .iter_allocated_protected_pages()
        .map(|id| id.raw())
        .collect();
    assert_eq!(
        listed,
        protected.keys().copied().collect::<Vec<_>>(),
        "protected ids"
    );
    for (&page, &(thread, tag, key)) in regular {
        let bytes = PageId::<P>::from_raw(page).get(pager).unwrap().as_bytes();
        assert!(holds(bytes, key, thread, tag), "page {page} content");
    }
    for (&id, &(thread, tag, _)) in protected {
        let bytes = ProtectedPageId::<P>::from_raw(id)
            .get(pager)
            .unwrap()
            .as_bytes();
        assert!(holds(bytes, id, thread, tag), "protected {id} content");
    }
}

#[test]
fn threads_share_a_sim_pager() {
    let shared = SharedPager::new(Pager::<P, SimStorage>::create_in(SimStorage::new()).unwrap());
    let model = run(&shared);
    check(&shared.read(), &model);
    shared.sync_all().unwrap();
    let image = shared.read().storage().durable_image();
    let reopened = Pager::<P, SimStorage>::open_in(SimStorage::from_image(image)).unwrap();
    check(&reopened, &model);
}

#[test]
fn threads_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.bin");
    let shared = SharedPager::new(Pager::<P>::create(&path).unwrap());
    let model = run(&shared);
    check(&shared.read(), &model);
    shared.sync_all().unwrap();
    let pager: Pager<P, MmapStorage> = shared.into_inner().unwrap();
    drop(pager);
    let reopened = Pager::<P>::open(&path).unwrap();
    check(&reopened, &model);
}
