//! What every built-in scenario carries besides its workload: its name, the seed it was
//! generated from and the commit mode it runs in, shared by [`AllocScenario`],
//! [`ProtectedScenario`] and [`ConcurrentScenario`].
//!
//! [`AllocScenario`]: crate::alloc_model::AllocScenario
//! [`ProtectedScenario`]: crate::protected_model::ProtectedScenario
//! [`ConcurrentScenario`]: crate::concurrent_model::ConcurrentScenario

use mappedpages::CommitMode;

/// A built-in scenario's name, seed and commit mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    name: String,
    seed: u64,
    commit_mode: CommitMode,
}

impl Identity {
    /// `name` generated from `seed`, committing in [`CommitMode::Flip`].
    pub(crate) fn new(name: impl Into<String>, seed: u64) -> Identity {
        Identity {
            name: name.into(),
            seed,
            commit_mode: CommitMode::Flip,
        }
    }

    /// The same, committing in `mode`; a mode other than `Flip` appends
    /// [`crate::commit_mode_suffix`] to the name.
    pub(crate) fn set_commit_mode(&mut self, mode: CommitMode) {
        self.name.push_str(crate::commit_mode_suffix(mode));
        self.commit_mode = mode;
    }

    pub(crate) fn name(&self) -> String {
        self.name.clone()
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    pub(crate) fn commit_mode(&self) -> CommitMode {
        self.commit_mode
    }
}

/// [`Scenario`](crate::Scenario)'s `name`, `seed` and `commit_mode`, from the scenario's
/// `identity` field (an [`Identity`]).
macro_rules! scenario_identity {
    () => {
        fn name(&self) -> String {
            self.identity.name()
        }

        fn seed(&self) -> u64 {
            self.identity.seed()
        }

        fn commit_mode(&self) -> mappedpages::CommitMode {
            self.identity.commit_mode()
        }
    };
}
pub(crate) use scenario_identity;

#[cfg(test)]
mod tests {
    use super::Identity;
    use mappedpages::CommitMode;

    #[test]
    fn a_commit_mode_other_than_flip_names_itself() {
        let mut flip = Identity::new("bulk", 7);
        flip.set_commit_mode(CommitMode::Flip);
        assert_eq!((flip.name(), flip.seed()), ("bulk".to_string(), 7));
        assert_eq!(flip.commit_mode(), CommitMode::Flip);
        let mut single = Identity::new("bulk", 7);
        single.set_commit_mode(CommitMode::SingleSync);
        assert_eq!(single.name(), "bulk+single-sync");
        assert_eq!(single.commit_mode(), CommitMode::SingleSync);
    }
}
