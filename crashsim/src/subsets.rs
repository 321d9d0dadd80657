//! Which subsets of the in-flight sectors a crash keeps.

use std::collections::BTreeSet;

/// splitmix64: a tiny deterministic generator, so every sample can be replayed from its seed.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The subsets of `sectors` (sorted sector indices) to explore.
///
/// * `sectors.len() <= exhaustive_bits`: every subset (2^n of them).
/// * otherwise: the named patterns — none, all, each single sector, all but each single sector,
///   every address-order prefix and suffix — plus `extra_samples` pseudo-random subsets drawn
///   from `seed`. Duplicates are removed.
pub fn subsets(
    sectors: &[u64],
    exhaustive_bits: u32,
    extra_samples: usize,
    seed: u64,
) -> Vec<Vec<u64>> {
    let n = sectors.len();
    if n as u32 <= exhaustive_bits {
        return (0u64..1 << n)
            .map(|mask| {
                sectors
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask >> i & 1 == 1)
                    .map(|(_, &s)| s)
                    .collect()
            })
            .collect();
    }
    let mut chosen: BTreeSet<Vec<u64>> = BTreeSet::new();
    chosen.insert(Vec::new());
    chosen.insert(sectors.to_vec());
    for i in 0..n {
        chosen.insert(vec![sectors[i]]);
        let mut all_but = sectors.to_vec();
        all_but.remove(i);
        chosen.insert(all_but);
        chosen.insert(sectors[..i].to_vec());
        chosen.insert(sectors[i..].to_vec());
    }
    let mut state = seed;
    for _ in 0..extra_samples {
        let subset: Vec<u64> = sectors
            .iter()
            .copied()
            .filter(|_| splitmix64(&mut state) & 1 == 1)
            .collect();
        chosen.insert(subset);
    }
    chosen.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sets_are_exhaustive() {
        let all = subsets(&[3, 7, 9], 14, 0, 0);
        assert_eq!(all.len(), 8);
        assert!(all.contains(&vec![]));
        assert!(all.contains(&vec![3, 9]));
    }

    #[test]
    fn large_sets_include_the_named_patterns() {
        let sectors: Vec<u64> = (0..20).collect();
        let chosen = subsets(&sectors, 14, 50, 1);
        assert!(chosen.contains(&vec![]));
        assert!(chosen.contains(&sectors));
        assert!(chosen.contains(&vec![5]));
        assert!(chosen.contains(&sectors[..7].to_vec()));
        assert!(chosen.contains(&sectors[7..].to_vec()));
        let mut all_but = sectors.clone();
        all_but.remove(4);
        assert!(chosen.contains(&all_but));
        assert!(chosen.len() > 4 * 20 - 10);
        assert_eq!(
            chosen,
            subsets(&sectors, 14, 50, 1),
            "deterministic from the seed"
        );
    }
}
