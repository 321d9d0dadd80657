//! The synchronization primitives `SharedPager` is written against (SPEC.md §3.10).
//!
//! Normally these are `std::sync`'s. Built with `RUSTFLAGS="--cfg loom"`, they are loom's
//! instrumented doubles, so that the loom models in `tests/loom.rs` explore every interleaving
//! of the real `SharedPager` code (commit queue, leader hand-off, wake-ups, the reader/writer
//! lock that keeps remaps away from live guards, and the per-thread record of held locks that
//! turns re-entry into an error). Nothing else in the crate synchronizes threads:
//! `Pager` itself is single-threaded (`&mut self`), and `SharedPager` reaches it only through
//! these locks.

#[cfg(loom)]
pub(crate) use loom::sync::{
    Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

/// Declares a thread-local (the record of which `SharedPager` locks the current thread holds,
/// for re-entry detection, SPEC.md §3.10): std's, with a `const` initializer (no lazy
/// initialization on access), normally; loom's under `--cfg loom`, where every model thread runs
/// on one OS thread, so std's would be shared by all of them.
macro_rules! thread_local_const {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        #[cfg(loom)]
        loom::thread_local! {
            $(#[$attr])* static $name: $t = $init;
        }
        #[cfg(not(loom))]
        std::thread_local! {
            $(#[$attr])* static $name: $t = const { $init };
        }
    };
}
pub(crate) use thread_local_const;
