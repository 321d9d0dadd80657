//! The invariants of SPEC.md §6, by name, and those of a downstream engine: what a
//! [`Finding`](crate::Finding) says it saw broken.

use std::fmt;

/// An invariant of SPEC.md §6, or one of a downstream engine's ([`Invariant::User`]). Each
/// SPEC variant is named as SPEC's table names it (INV-7 is "**Failures.**", so
/// [`Invariant::Failures`]); `Display` prints the number as SPEC writes it (`INV-7`), and a
/// report (JSON) carries the number. A user invariant prints, and is reported, by its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "Repr", try_from = "Repr")]
pub enum Invariant {
    /// INV-1: every crash image of a run without media corruption opens without error.
    Opens,
    /// INV-2: the recovered allocation state is exactly the state after one commit, the last
    /// acknowledged one or the one in flight.
    Atomic,
    /// INV-3: an acknowledged allocation stays allocated unless a later acknowledged free
    /// released it; no page is handed out twice.
    Durable,
    /// INV-4: a protected page reads as its last acknowledged commit or the one in flight.
    ProtectedContent,
    /// INV-5: internal and directory-owned pages are never data pages and never listed; counts
    /// agree; the file holds every page.
    WellFormed,
    /// INV-6: recovery interrupted at any of its writes and rerun gives the same state;
    /// operations after recovery keep INV-1..5.
    Restartable,
    /// INV-7: a failed sync poisons the pager and loses nothing acknowledged; a pager that is not
    /// poisoned after a failure holds the durable state.
    Failures,
    /// INV-8: corruption of one page is detected; recovery falls back only when that loses
    /// nothing acknowledged, otherwise a typed error; never wrong data.
    MediaCorruption,
    /// INV-9: any image and any id give a value or a typed error, never a panic.
    MalformedInput,
    /// INV-10: a second `Pager` on an open file fails with `Locked`.
    Exclusive,
    /// INV-11: a crash during create leaves no file or one that opens.
    AtomicCreate,
    /// INV-12: a single-page commit syncs a bounded number of bytes.
    BoundedCommitCost,
    /// INV-13: any single directory page or the superblock, damaged, leaves a file that opens with
    /// every protected page intact (also once a crash image has been recovered).
    RedundantDirectory,
    /// INV-14: with reservation on, nothing is written through the map into an unreserved page.
    Space,
    /// INV-15: a page filled by `alloc_with` is free or allocated with exactly its filled bytes
    /// after any crash; writing it again never loses the commit that filled it.
    FilledPages,
    /// INV-16: a data page attached to a commit (`attach_to_next_commit`) holds the bytes it had
    /// when the commit started once that commit returns; in flip mode also after any crash that
    /// keeps the commit.
    AttachedPages,
    /// An invariant of the engine a downstream [`Scenario`](crate::Scenario) checks, by the
    /// name the engine gives it (`"KV-1 acknowledged puts survive"`); see [`Invariant::user`].
    User(String),
}

/// How an invariant is written in a report: SPEC's by number, a user's by name.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Repr {
    Number(u8),
    Name(String),
}

impl Invariant {
    /// Every invariant, in SPEC's order (`ALL[n - 1]` is INV-n).
    pub const ALL: [Invariant; 16] = [
        Invariant::Opens,
        Invariant::Atomic,
        Invariant::Durable,
        Invariant::ProtectedContent,
        Invariant::WellFormed,
        Invariant::Restartable,
        Invariant::Failures,
        Invariant::MediaCorruption,
        Invariant::MalformedInput,
        Invariant::Exclusive,
        Invariant::AtomicCreate,
        Invariant::BoundedCommitCost,
        Invariant::RedundantDirectory,
        Invariant::Space,
        Invariant::FilledPages,
        Invariant::AttachedPages,
    ];

    /// An invariant of your engine, named `name` in reports (pick names that cannot be taken
    /// for SPEC.md's `INV-n`, for example with your engine's prefix: `"KV-1 ..."`).
    pub fn user(name: impl Into<String>) -> Invariant {
        Invariant::User(name.into())
    }

    /// Its number in SPEC.md §6 (`n` of `INV-n`); `None` for a [`User`](Invariant::User) one.
    pub fn spec_number(&self) -> Option<u8> {
        match self {
            Invariant::User(_) => None,
            spec => Some(spec.number()),
        }
    }

    /// Its number in SPEC.md §6 (`n` of `INV-n`); 0 for a [`User`](Invariant::User) one.
    pub const fn number(&self) -> u8 {
        match self {
            Invariant::User(_) => 0,
            Invariant::Opens => 1,
            Invariant::Atomic => 2,
            Invariant::Durable => 3,
            Invariant::ProtectedContent => 4,
            Invariant::WellFormed => 5,
            Invariant::Restartable => 6,
            Invariant::Failures => 7,
            Invariant::MediaCorruption => 8,
            Invariant::MalformedInput => 9,
            Invariant::Exclusive => 10,
            Invariant::AtomicCreate => 11,
            Invariant::BoundedCommitCost => 12,
            Invariant::RedundantDirectory => 13,
            Invariant::Space => 14,
            Invariant::FilledPages => 15,
            Invariant::AttachedPages => 16,
        }
    }

    /// The invariant numbered `number` in SPEC.md §6 (`INV-number`), if there is one.
    pub fn from_number(number: u8) -> Option<Invariant> {
        Invariant::ALL
            .into_iter()
            .find(|invariant| invariant.number() == number)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that a width (`{:<7}`, as the mutant table uses) applies.
        match self {
            Invariant::User(name) => f.pad(name),
            spec => f.pad(&format!("INV-{}", spec.number())),
        }
    }
}

impl From<Invariant> for Repr {
    fn from(invariant: Invariant) -> Repr {
        match invariant {
            Invariant::User(name) => Repr::Name(name),
            spec => Repr::Number(spec.number()),
        }
    }
}

impl TryFrom<Repr> for Invariant {
    type Error = String;

    fn try_from(repr: Repr) -> Result<Invariant, String> {
        match repr {
            Repr::Number(number) => {
                Invariant::from_number(number).ok_or_else(|| format!("no invariant INV-{number}"))
            }
            Repr::Name(name) => Ok(Invariant::User(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Invariant;

    #[test]
    fn numbers_follow_spec_order_and_round_trip() {
        for (index, invariant) in Invariant::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(invariant.number()), index + 1);
            assert_eq!(
                Invariant::from_number(invariant.number()),
                Some(invariant.clone())
            );
            assert_eq!(invariant.to_string(), format!("INV-{}", index + 1));
            assert_eq!(
                format!("{invariant:<7}|"),
                format!("{:<7}|", invariant.to_string())
            );
        }
        assert_eq!(Invariant::from_number(0), None);
        assert_eq!(Invariant::from_number(17), None);
    }

    #[test]
    fn a_report_carries_the_number() {
        let json = serde_json::to_string(&Invariant::Failures).expect("encode");
        assert_eq!(json, "7");
        let back: Invariant = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, Invariant::Failures);
        assert!(serde_json::from_str::<Invariant>("17").is_err());
    }

    #[test]
    fn a_user_invariant_is_printed_and_reported_by_its_name() {
        let mine = Invariant::user("KV-1 acknowledged puts survive");
        assert_eq!(mine.to_string(), "KV-1 acknowledged puts survive");
        assert_eq!(mine.spec_number(), None);
        assert_eq!(Invariant::Durable.spec_number(), Some(3));
        let json = serde_json::to_string(&mine).expect("encode");
        assert_eq!(json, "\"KV-1 acknowledged puts survive\"");
        let back: Invariant = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, mine);
    }
}
