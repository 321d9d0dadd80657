//! The command line, parsed by hand (the library takes no argument-parsing dependency).

use mappedpages::{CommitMode, SectorSize};

use crate::Phases;

/// What the command line asks for.
#[derive(Clone, Debug)]
pub(super) struct Args {
    pub(super) workloads: Vec<String>,
    pub(super) list: bool,
    pub(super) help: bool,
    pub(super) version: bool,
    /// `None`: no budget, every workload explored completely.
    pub(super) max_states: Option<u64>,
    pub(super) min_states: u64,
    /// `None`: not given (the built-in workloads run in both modes).
    pub(super) commit_modes: Option<Vec<CommitMode>>,
    pub(super) seconds: Option<u64>,
    pub(super) seed: u64,
    pub(super) mixes: u64,
    pub(super) protected_mixes: u64,
    pub(super) sectors: Vec<SectorSize>,
    pub(super) json: bool,
    pub(super) replay: Option<String>,
    pub(super) mutant: Option<String>,
    pub(super) stop_at_first: bool,
    pub(super) phases: Phases,
    pub(super) allow_partial: bool,
    pub(super) progress: bool,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            workloads: Vec::new(),
            list: false,
            help: false,
            version: false,
            max_states: None,
            min_states: 0,
            commit_modes: None,
            seconds: None,
            seed: 0,
            mixes: 80,
            protected_mixes: 6,
            sectors: vec![SectorSize::S512, SectorSize::S4096],
            json: false,
            replay: None,
            mutant: None,
            stop_at_first: false,
            phases: Phases::all(),
            allow_partial: false,
            progress: false,
        }
    }
}

/// The options, for `--help`. `builtin`: the options that only shape the built-in workloads.
pub(super) fn usage(program: &str, builtin: bool) -> String {
    let (modes, seed) = if builtin {
        (
            "flip, single-sync: the modes every workload runs in\n\
             \x20                           (comma-separated; default both)",
            "seed of the random mixes and of the sampling of\n\
             \x20                           large in-flight sets (default 0)",
        )
    } else {
        (
            "flip, single-sync: explore only the workloads that\n\
             \x20                           commit in these modes (comma-separated)",
            "seed of the sampling of large in-flight sets (default 0)",
        )
    };
    let mut text = format!(
        "Usage: {program} [OPTIONS]\n\n\
         Explores every crash state of each workload: a crash before every sync with torn and\n\
         early-written sectors at both file lengths, crashes of recovery, crash-recover-continue\n\
         chains, failed syncs and growths, media damage; checks the invariants on every\n\
         recovered state.\n\n\
         Exit status: 0 pass, 1 violations (or fewer states than --min-states), 2 usage error,\n\
         3 partial (cut short by --seconds or --max-states; 0 with --allow-partial).\n\n\
         Options:\n\
         \x20 -w, --workload NAME       explore only this workload (repeatable; see --list)\n\
         \x20     --list                list the workloads with what each does, and exit\n\
         \x20     --seconds N           stop after N seconds (the run is then PARTIAL)\n\
         \x20     --max-states N        stop after N crash states (the run is then PARTIAL)\n\
         \x20     --allow-partial       exit 0 for a run cut short (still reported as PARTIAL)\n\
         \x20     --min-states N        fail when fewer than N crash states were explored\n\
         \x20     --commit-modes LIST   {modes}\n\
         \x20     --phases LIST         crashes, recovery-crashes, chains, failed-syncs,\n\
         \x20                           failed-growth, media, crash-media (default all)\n\
         \x20     --sector SIZE         512, 4096 or both (default both)\n\
         \x20     --seed N              {seed}\n"
    );
    if builtin {
        text.push_str(
            "      --mixes N             seeded random allocation mixes (default 80)\n\
             \x20     --protected-mixes N   seeded protected-page mixes (default 6)\n",
        );
    }
    text.push_str(
        "      --stop-at-first       stop exploring a workload at its first violation\n\
         \x20     --json                print the report as JSON on stdout\n\
         \x20     --progress            show progress on stderr even when it is not a terminal\n\
         \x20     --replay JSON         rerun one crash state, given the reproducer a violation\n\
         \x20                           printed\n\
         \x20     --mutant NAME         activate a deliberately broken protocol variant of\n\
         \x20                           mappedpages (needs crashsim's `mutants` feature)\n\
         \x20 -h, --help                print this help\n\
         \x20 -V, --version             print the version\n",
    );
    text
}

/// Parses `args` (without the program name).
pub(super) fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut index = 0;
    while let Some(arg) = args.get(index) {
        index += 1;
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(value) = inline.clone() {
                return Ok(value);
            }
            let value = args
                .get(index)
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?;
            index += 1;
            Ok(value)
        };
        match name {
            "-w" | "--workload" => parsed.workloads.push(value()?),
            "--list" => parsed.list = true,
            "-h" | "--help" => parsed.help = true,
            "-V" | "--version" => parsed.version = true,
            "--max-states" => parsed.max_states = Some(number(name, &value()?)?),
            "--min-states" => parsed.min_states = number(name, &value()?)?,
            "--commit-modes" => parsed.commit_modes = Some(commit_modes(&value()?)?),
            "--seconds" => parsed.seconds = Some(number(name, &value()?)?),
            "--seed" => parsed.seed = number(name, &value()?)?,
            "--mixes" => parsed.mixes = number(name, &value()?)?,
            "--protected-mixes" => parsed.protected_mixes = number(name, &value()?)?,
            "--sector" => parsed.sectors = sectors(&value()?)?,
            "--json" => parsed.json = true,
            "--replay" => parsed.replay = Some(value()?),
            "--mutant" => parsed.mutant = Some(value()?),
            "--stop-at-first" => parsed.stop_at_first = true,
            "--phases" => parsed.phases = phases(&value()?)?,
            "--allow-partial" => parsed.allow_partial = true,
            "--progress" => parsed.progress = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(parsed)
}

fn number(name: &str, value: &str) -> Result<u64, String> {
    let digits: String = value.chars().filter(|&c| c != '_' && c != ',').collect();
    digits
        .parse()
        .map_err(|_| format!("{name} needs a whole number, not {value:?}"))
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn commit_modes(value: &str) -> Result<Vec<CommitMode>, String> {
    let modes = list(value)
        .map(|name| match name {
            "flip" => Ok(CommitMode::Flip),
            "single-sync" => Ok(CommitMode::SingleSync),
            other => Err(format!(
                "unknown commit mode {other} (expected flip or single-sync)"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if modes.is_empty() {
        return Err("--commit-modes needs at least one mode".into());
    }
    Ok(modes)
}

fn sectors(value: &str) -> Result<Vec<SectorSize>, String> {
    match value {
        "512" => Ok(vec![SectorSize::S512]),
        "4096" => Ok(vec![SectorSize::S4096]),
        "both" => Ok(vec![SectorSize::S512, SectorSize::S4096]),
        other => Err(format!(
            "unknown sector size {other} (expected 512, 4096 or both)"
        )),
    }
}

fn phases(value: &str) -> Result<Phases, String> {
    let mut phases = Phases::none();
    for name in list(value) {
        match name {
            "crashes" => phases.crashes = true,
            "recovery-crashes" => phases.recovery_crashes = true,
            "chains" => phases.chains = true,
            "failed-syncs" => phases.failed_syncs = true,
            "failed-growth" => phases.failed_growth = true,
            "media" => phases.media = true,
            "crash-media" => phases.crash_media = true,
            other => return Err(format!("unknown phase {other}")),
        }
    }
    Ok(phases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_take_values_inline_or_next() {
        let args = parse(&strings(&[
            "-w",
            "single",
            "--workload=bulk",
            "--max-states",
            "1_000",
            "--commit-modes=single-sync",
            "--phases",
            "crashes,chains",
            "--sector",
            "512",
            "--allow-partial",
        ]))
        .expect("parses");
        assert_eq!(args.workloads, ["single", "bulk"]);
        assert_eq!(args.max_states, Some(1000));
        assert_eq!(args.commit_modes, Some(vec![CommitMode::SingleSync]));
        assert!(args.phases.crashes && args.phases.chains && !args.phases.media);
        assert_eq!(args.sectors, [SectorSize::S512]);
        assert!(args.allow_partial);
    }

    #[test]
    fn mistakes_are_errors_that_say_what() {
        for (args, expected) in [
            (vec!["--bogus"], "unknown option --bogus"),
            (vec!["--seconds"], "--seconds needs a value"),
            (vec!["--seconds", "ten"], "whole number"),
            (vec!["--commit-modes", "fast"], "unknown commit mode fast"),
            (vec!["--phases", "crashes,oops"], "unknown phase oops"),
            (vec!["--sector", "1024"], "unknown sector size"),
        ] {
            let error = parse(&strings(&args)).expect_err("rejected");
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }
}
