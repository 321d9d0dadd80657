//! The built-in workloads, behind one object-safe interface so that page sizes can be mixed.

use crate::alloc_model::{
    AllocScenario, bulk_ops, churn_ops, groups_ops, growth_ops, random_ops, single_ops,
};
use crate::protected_model::{ProtectedScenario, protected_ops, random_protected_ops};
use crate::{Case, Config, Outcome, Scenario, Violation, explore, replay};

/// Operations in a seeded protected mix (`pmix-<seed>`).
const PROTECTED_MIX_OPS: usize = 60;

/// A workload the binary can explore: a [`Scenario`] with its page size erased.
pub trait Workload: Sync + Send {
    /// Name used in reports, `--workload` and reproducers.
    fn name(&self) -> String;
    /// Seed the workload was generated from.
    fn seed(&self) -> u64;
    /// Page size in bytes.
    fn page_size(&self) -> usize;
    /// Explores it.
    fn explore(&self, config: &Config) -> Outcome;
    /// Reruns one case.
    fn replay(&self, case: &Case) -> Vec<Violation>;
}

macro_rules! workload_for {
    ($scenario:ident) => {
        impl<const P: usize> Workload for $scenario<P> {
            fn name(&self) -> String {
                Scenario::<P>::name(self)
            }
            fn seed(&self) -> u64 {
                Scenario::<P>::seed(self)
            }
            fn page_size(&self) -> usize {
                P
            }
            fn explore(&self, config: &Config) -> Outcome {
                explore::<P, _>(self, config)
            }
            fn replay(&self, case: &Case) -> Vec<Violation> {
                replay::<P, _>(self, case)
            }
        }
    };
}

workload_for!(AllocScenario);
workload_for!(ProtectedScenario);

/// The built-in workloads: the fixed allocation ones, `mixes` seeded random allocation mixes
/// (seeds `seed`, `seed + 1`, …; every fourth at 4 KiB pages, the rest at 1 KiB), the fixed
/// protected ones (`protected`, `protected-4k`), then `protected_mixes` seeded protected-page
/// mixes (`pmix-<seed>`, 1 KiB pages, same seeds).
pub fn builtin(mixes: u64, protected_mixes: u64, seed: u64) -> Vec<Box<dyn Workload>> {
    let mut workloads: Vec<Box<dyn Workload>> = vec![
        Box::new(AllocScenario::<1024>::new("single", 0, single_ops())),
        Box::new(AllocScenario::<1024>::new("bulk", 0, bulk_ops())),
        Box::new(AllocScenario::<1024>::new("growth", 0, growth_ops())),
        Box::new(AllocScenario::<4096>::new("growth-4k", 0, growth_ops())),
        Box::new(AllocScenario::<1024>::new("churn", 0, churn_ops())),
        Box::new(AllocScenario::<1024>::new("groups", 0, groups_ops())),
    ];
    for index in 0..mixes {
        let mix_seed = seed.wrapping_add(index);
        if index % 4 == 3 {
            workloads.push(Box::new(AllocScenario::<4096>::new(
                format!("mix-4k-{mix_seed}"),
                mix_seed,
                random_ops(mix_seed, 80),
            )));
        } else {
            workloads.push(Box::new(AllocScenario::<1024>::new(
                format!("mix-{mix_seed}"),
                mix_seed,
                random_ops(mix_seed, 80),
            )));
        }
    }
    // The protected workloads come last: each costs a few times a regular mix, and the state
    // budget is split evenly, with what a workload leaves unused passed on to the next ones.
    workloads.push(Box::new(ProtectedScenario::<1024>::new(
        "protected",
        0,
        protected_ops(1024),
    )));
    workloads.push(Box::new(ProtectedScenario::<4096>::new(
        "protected-4k",
        0,
        protected_ops(4096),
    )));
    for index in 0..protected_mixes {
        let mix_seed = seed.wrapping_add(index);
        workloads.push(Box::new(ProtectedScenario::<1024>::new(
            format!("pmix-{mix_seed}"),
            mix_seed,
            random_protected_ops(mix_seed, PROTECTED_MIX_OPS),
        )));
    }
    workloads
}

/// The built-in workload called `name` (`mix-<seed>`, `mix-4k-<seed>`, `pmix-<seed>` and
/// `pmix-4k-<seed>` are generated).
pub fn by_name(name: &str) -> Option<Box<dyn Workload>> {
    let seed_of = |prefix: &str| name.strip_prefix(prefix).and_then(|s| s.parse().ok());
    if let Some(seed) = seed_of("mix-4k-") {
        return Some(Box::new(AllocScenario::<4096>::new(
            name,
            seed,
            random_ops(seed, 80),
        )));
    }
    if let Some(seed) = seed_of("mix-") {
        return Some(Box::new(AllocScenario::<1024>::new(
            name,
            seed,
            random_ops(seed, 80),
        )));
    }
    if let Some(seed) = seed_of("pmix-4k-") {
        return Some(Box::new(ProtectedScenario::<4096>::new(
            name,
            seed,
            random_protected_ops(seed, PROTECTED_MIX_OPS),
        )));
    }
    if let Some(seed) = seed_of("pmix-") {
        return Some(Box::new(ProtectedScenario::<1024>::new(
            name,
            seed,
            random_protected_ops(seed, PROTECTED_MIX_OPS),
        )));
    }
    builtin(0, 0, 0).into_iter().find(|w| w.name() == name)
}
