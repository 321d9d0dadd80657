//! Readers of a `SharedPager` while a group commit's barrier runs (SPEC.md §3.10): the barrier
//! runs with the pager lock released, so `page` and `protected_page` answer at once, from the
//! durable state; `read` and writes to a page the group changes wait until the group is
//! published; `sync_page` calls share a group's barrier.
//!
//! The storage here holds every barrier open until the test lets it go (`Gate`), so "during the
//! flush" is a state the test controls, not a race it hopes to win. Every wait on another thread
//! has a timeout: a reader that blocks fails the test instead of hanging it.

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use mappedpages::{
    MappedPageError, PageId, Pager, PendingBarrier, ProtectedPageId, SharedPager, SimStorage,
    Storage,
};

const P: usize = 1024;
/// Long enough for any thread of this test to get where it is going on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long a blocked call is watched to see that it stays blocked.
const STILL_BLOCKED: Duration = Duration::from_millis(200);

/// Holds the barriers started while it is closed; counts them.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
    /// Barriers fail (after the gate opens) while set.
    fail: AtomicBool,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    /// Barriers waiting at the gate now.
    waiting: usize,
}

impl Gate {
    fn close(&self) {
        self.state.lock().unwrap().closed = true;
    }

    fn open(&self) {
        self.state.lock().unwrap().closed = false;
        self.changed.notify_all();
    }

    /// Waits until a barrier is held at the gate.
    fn wait_for_barrier(&self) {
        let state = self.state.lock().unwrap();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, PATIENCE, |s| s.waiting == 0)
            .unwrap();
        assert!(!timeout.timed_out() && state.waiting > 0, "no barrier came");
    }

    fn pass(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap();
        state.waiting += 1;
        self.changed.notify_all();
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, PATIENCE, |s| s.closed)
            .unwrap();
        state.waiting -= 1;
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("the gate's device failed"));
        }
        Ok(())
    }
}

/// `SimStorage` whose barriers wait at a `Gate` (after syncing: what they make durable is
/// decided when they start; only their return is held).
struct Gated {
    sim: SimStorage,
    gate: Arc<Gate>,
}

impl Storage for Gated {
    fn len_bytes(&self) -> u64 {
        self.sim.len_bytes()
    }
    fn grow(&mut self, new_len_bytes: u64) -> io::Result<()> {
        self.sim.grow(new_len_bytes)
    }
    fn bytes(&self) -> &[u8] {
        self.sim.bytes()
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.sim.bytes_mut()
    }
    fn sync_ranges(&mut self, ranges: &[Range<u64>]) -> io::Result<()> {
        self.sim.sync_ranges(ranges)
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.sim.sync_all()
    }
    fn start_barrier(&mut self, ranges: &[Range<u64>]) -> io::Result<PendingBarrier> {
        self.sim.sync_ranges(ranges)?;
        let gate = self.gate.clone();
        Ok(PendingBarrier::new(move || gate.pass()))
    }
    fn reserve(&mut self, ranges: &[Range<u64>]) -> io::Result<()> {
        self.sim.reserve(ranges)
    }
    fn shrink(&mut self, new_len_bytes: u64) -> io::Result<()> {
        self.sim.shrink(new_len_bytes)
    }
}

type Shared = SharedPager<P, Gated>;

/// A shared pager with one regular page of 7s, one protected page reading "old", and free
/// pages left (so an allocation does not grow the file); and its gate, open.
fn setup() -> (Shared, Arc<Gate>, PageId<P>, ProtectedPageId<P>) {
    let gate = Arc::new(Gate::default());
    let storage = Gated {
        sim: SimStorage::new(),
        gate: gate.clone(),
    };
    let mut pager = Pager::<P, Gated>::create_in(storage).unwrap();
    let room = pager.alloc_bulk(40).unwrap(); // grows the file now, not in the tests
    pager.free_bulk(room).unwrap();
    let id = pager.alloc().unwrap();
    id.get_mut(&mut pager).unwrap().as_bytes_mut().fill(7);
    pager.sync_page(id).unwrap();
    let protected = pager.alloc_protected().unwrap();
    let mut writer = protected.get_mut(&mut pager).unwrap();
    writer.page_mut().as_bytes_mut()[..3].copy_from_slice(b"old");
    writer.commit().unwrap();
    assert!(pager.free_page_count() > 16);
    (SharedPager::new(pager), gate, id, protected)
}

/// Runs `f` on another thread and returns its result, or fails if it takes longer than
/// `PATIENCE` (a reader that waits for the held barrier would).
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = mpsc::channel();
    thread::spawn(move || send.send(f()));
    receive
        .recv_timeout(PATIENCE)
        .expect("a reader waited for a group commit's barrier")
}

/// Starts `f` on another thread; returns the receiver of its result.
fn started<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (send, receive) = mpsc::channel();
    thread::spawn(move || send.send(f()));
    receive
}

/// Closes the gate, starts `f` on a clone of `shared` on another thread, and returns once its
/// group's barrier is held at the gate: the group is in flight.
fn in_flight<T: Send + 'static>(
    shared: &Shared,
    gate: &Gate,
    f: impl FnOnce(Shared) -> T + Send + 'static,
) -> mpsc::Receiver<T> {
    gate.close();
    let shared = shared.clone();
    let receive = started(move || f(shared));
    gate.wait_for_barrier();
    receive
}

/// [`promptly`] on a clone of `shared`.
fn read_promptly<T: Send + 'static>(
    shared: &Shared,
    f: impl FnOnce(Shared) -> T + Send + 'static,
) -> T {
    let shared = shared.clone();
    promptly(move || f(shared))
}

#[test]
fn during_a_free_s_barrier_the_page_is_still_allocated_and_read_waits() {
    let (shared, gate, id, _) = setup();
    let free = in_flight(&shared, &gate, move |shared| shared.free(id));
    let bytes = read_promptly(&shared, move |shared| {
        shared.page(id).map(|page| page.as_bytes().to_vec())
    });
    assert_eq!(bytes.unwrap(), vec![7; P], "the free is not durable yet");
    let whole = started({
        let shared = shared.clone();
        move || shared.read().is_allocated(id)
    });
    assert!(
        whole.recv_timeout(STILL_BLOCKED).is_err(),
        "read() returned while the group's barrier ran: it would show memory that is not durable"
    );
    gate.open();
    free.recv_timeout(PATIENCE).unwrap().unwrap();
    assert!(!whole.recv_timeout(PATIENCE).unwrap(), "published after");
    assert!(matches!(
        shared.page(id),
        Err(MappedPageError::NotAllocated { .. })
    ));
}

#[test]
fn during_an_allocation_s_barrier_no_new_page_is_visible() {
    let (shared, gate, _, _) = setup();
    let (page_count, before): (u64, Vec<u64>) = {
        let pager = shared.read();
        let allocated = pager.iter_allocated_pages().map(|id| id.raw()).collect();
        (pager.page_count(), allocated)
    };
    let alloc = in_flight(&shared, &gate, move |shared| {
        shared.alloc_with(|page| page.as_bytes_mut().fill(9))
    });
    let visible: Vec<u64> = promptly({
        let shared = shared.clone();
        move || {
            (0..page_count)
                .filter(|&page| shared.page(PageId::from_raw(page)).is_ok())
                .collect()
        }
    });
    assert_eq!(
        visible, before,
        "a reader saw the allocation before it was durable"
    );
    gate.open();
    let id = alloc.recv_timeout(PATIENCE).unwrap().unwrap();
    assert!(id.raw() < page_count, "the file did not grow");
    assert_eq!(shared.page(id).unwrap().as_bytes(), &[9; P]);
}

#[test]
fn during_a_protected_write_s_barrier_readers_see_the_committed_copy() {
    let (shared, gate, _, protected) = setup();
    gate.close();
    let write = started({
        let shared = shared.clone();
        move || {
            shared.write_protected(protected, |page| {
                page.as_bytes_mut()[..3].copy_from_slice(b"new")
            })
        }
    });
    gate.wait_for_barrier();
    let seen = promptly({
        let shared = shared.clone();
        move || {
            shared
                .protected_page(protected)
                .map(|page| page.as_bytes()[..3].to_vec())
        }
    });
    assert_eq!(seen.unwrap(), b"old");
    gate.open();
    write.recv_timeout(PATIENCE).unwrap().unwrap();
    assert_eq!(
        &shared.protected_page(protected).unwrap().as_bytes()[..3],
        b"new"
    );
}

#[test]
fn a_write_to_a_page_the_group_frees_waits_for_the_group() {
    let (shared, gate, id, _) = setup();
    let free = in_flight(&shared, &gate, move |shared| shared.free(id));
    let write = started({
        let shared = shared.clone();
        move || shared.write_page(id, |page| page.as_bytes_mut()[0] = 1)
    });
    assert!(
        write.recv_timeout(STILL_BLOCKED).is_err(),
        "the write did not wait"
    );
    gate.open();
    free.recv_timeout(PATIENCE).unwrap().unwrap();
    assert!(matches!(
        write.recv_timeout(PATIENCE).unwrap(),
        Err(MappedPageError::NotAllocated { .. })
    ));
}

#[test]
fn a_write_to_another_page_goes_on_during_the_barrier() {
    let (shared, gate, id, _) = setup();
    let other = shared.alloc().unwrap();
    let free = in_flight(&shared, &gate, move |shared| shared.free(id));
    read_promptly(&shared, move |shared| {
        shared.write_page(other, |page| page.as_bytes_mut()[0] = 5)
    })
    .unwrap();
    gate.open();
    free.recv_timeout(PATIENCE).unwrap().unwrap();
    assert_eq!(shared.page(other).unwrap().as_bytes()[0], 5);
}

#[test]
fn a_failed_barrier_shows_readers_nothing_of_its_group_then_poisons() {
    let (shared, gate, id, _) = setup();
    gate.fail.store(true, Ordering::SeqCst);
    let free = in_flight(&shared, &gate, move |shared| shared.free(id));
    let during = read_promptly(&shared, move |shared| {
        shared.page(id).map(|page| page.as_bytes()[0])
    });
    assert_eq!(during.unwrap(), 7);
    gate.open();
    assert!(matches!(
        free.recv_timeout(PATIENCE).unwrap(),
        Err(MappedPageError::Io { .. })
    ));
    assert!(matches!(
        shared.page(id),
        Err(MappedPageError::Poisoned { .. })
    ));
    assert!(shared.read().is_poisoned());
}

#[test]
fn page_syncs_from_many_threads_share_a_barrier() {
    const THREADS: usize = 6;
    let (shared, gate, _, _) = setup();
    let ids = shared.alloc_bulk(THREADS).unwrap();
    for (n, &id) in ids.iter().enumerate() {
        shared
            .write_page(id, |page| page.as_bytes_mut().fill(n as u8 + 1))
            .unwrap();
    }
    let before = shared.stats();
    gate.close();
    // The first sync's barrier is held; the others queue behind it and form one group.
    let first = started({
        let shared = shared.clone();
        let id = ids[0];
        move || shared.sync_page(id)
    });
    gate.wait_for_barrier();
    let rest: Vec<_> = ids[1..]
        .iter()
        .map(|&id| {
            let shared = shared.clone();
            started(move || shared.sync_page(id))
        })
        .collect();
    let queued = std::time::Instant::now();
    while shared.pending_operations() < THREADS - 1 {
        assert!(queued.elapsed() < PATIENCE, "the syncs did not queue");
        thread::yield_now();
    }
    gate.open();
    first.recv_timeout(PATIENCE).unwrap().unwrap();
    for done in rest {
        done.recv_timeout(PATIENCE).unwrap().unwrap();
    }
    let stats = shared.stats();
    assert_eq!(stats.operations - before.operations, THREADS as u64);
    assert_eq!(
        stats.commits - before.commits,
        2,
        "{THREADS} syncs took more than two barriers"
    );
    let pager = shared.into_inner().unwrap();
    let durable = pager.storage().sim.durable_image();
    for (n, id) in ids.iter().enumerate() {
        let offset = id.raw() as usize * P;
        assert!(
            durable[offset..offset + P]
                .iter()
                .all(|&b| b == n as u8 + 1)
        );
    }
}
