//! tinykv's crash scenario: append records, acknowledge each once `append` returns, and check
//! every recovered state through tinykv's own open path. Shared by `tests/crash.rs` (the
//! `#[test]`) and `examples/crash.rs` (the command line).

use crashsim::{Allowed, Finding, Invariant, Matched, Recorder, Recovered, Scenario};
use mappedpages::{Pager, SimStorage};
use tinykv::{Error, Log};

/// Page size of the crash test: small pages, small crash images.
pub const P: usize = 1024;

/// The model: the records acknowledged, in order.
pub type Records = Vec<Vec<u8>>;

/// Appends `records` records of varied lengths; after a crash and recovery, two more.
pub struct Appends {
    pub records: usize,
}

fn record(index: usize) -> Vec<u8> {
    // 9 to 530 bytes: some records cross a 512-byte sector, so tears inside a record show.
    format!("record {index};")
        .repeat(1 + index * 37 % 60)
        .into_bytes()
}

/// Appends `records[done..]` (plus `more` new ones) to `log`, acknowledging each.
fn append_all(
    log: &mut Log<P, SimStorage>,
    rec: &mut Recorder<Records>,
    mut model: Records,
    more: std::ops::Range<usize>,
) {
    for index in more {
        let bytes = record(index);
        match log.append(&bytes) {
            Ok(_) => {
                model.push(bytes);
                rec.ack(log.pager(), model.clone());
            }
            Err(Error::Pager(error)) => {
                rec.failed(log.pager(), &error); // an injected failure: allowed, checked
                if log.pager().is_poisoned() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// LOG-1: the log opens after any crash (through `Log::open`, repairs included).
fn opens() -> Invariant {
    Invariant::user("LOG-1 the log opens after any crash")
}

/// LOG-2: the log holds exactly the acknowledged records, or those plus the one in flight.
fn exact() -> Invariant {
    Invariant::user("LOG-2 the log holds the acknowledged records")
}

/// LOG-3: after open, no page is allocated that the log does not use.
fn no_leak() -> Invariant {
    Invariant::user("LOG-3 open frees leaked pages")
}

impl Scenario<P> for Appends {
    type Model = Records;

    fn name(&self) -> String {
        format!("tinykv-appends-{}", self.records)
    }

    fn description(&self) -> String {
        let lens: Vec<usize> = (0..self.records).map(|i| record(i).len()).collect();
        format!(
            "{} appends of {} to {} bytes; 2 more after recovery",
            self.records,
            lens.iter().min().unwrap_or(&0),
            lens.iter().max().unwrap_or(&0)
        )
    }

    fn initial_model(&self) -> Records {
        Vec::new()
    }

    fn run(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<Records>,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let mut log = match Log::open(pager) {
            Ok(log) => log,
            Err((_, pager)) => return Ok(pager), // an injected failure while creating the root
        };
        append_all(&mut log, rec, Vec::new(), 0..self.records);
        Ok(log.into_pager())
    }

    fn resume(
        &self,
        pager: Pager<P, SimStorage>,
        rec: &mut Recorder<Records>,
        model: &Records,
    ) -> Result<Pager<P, SimStorage>, Finding> {
        let mut log = match Log::open(pager) {
            Ok(log) => log,
            Err((error, _)) => return Err(Finding::new(opens(), error.to_string())),
        };
        let done = model.len();
        append_all(&mut log, rec, model.clone(), done..done + 2);
        Ok(log.into_pager())
    }

    fn check(
        &self,
        recovered: &Recovered<'_, P>,
        allowed: &Allowed<'_, Records>,
    ) -> Result<Matched, Finding> {
        let log = Log::open(recovered.to_pager()?)
            .map_err(|(error, _)| Finding::new(opens(), error.to_string()))?;
        let records = log
            .records()
            .map_err(|error| Finding::new(opens(), error.to_string()))?;
        let allocated = log.pager().allocated_page_count();
        if allocated != records.len() as u64 {
            return Err(Finding::new(
                no_leak(),
                format!("{allocated} pages allocated for {} records", records.len()),
            ));
        }
        if records == *allowed.acknowledged {
            Ok(Matched::Acknowledged)
        } else if allowed.in_flight == Some(&records) {
            Ok(Matched::InFlight)
        } else {
            // The closest allowed state, to say which record differs.
            let closest = allowed
                .in_flight
                .filter(|m| m.len() == records.len())
                .unwrap_or(allowed.acknowledged);
            let differs = records
                .iter()
                .zip(closest)
                .position(|(got, want)| got != want)
                .map(|i| {
                    let (got, want) = (records[i].len(), closest[i].len());
                    format!("; record {i} reads {got} bytes, {want} were appended")
                })
                .unwrap_or_default();
            Err(Finding::new(
                exact(),
                format!(
                    "{} records recovered, {} acknowledged{differs}",
                    records.len(),
                    allowed.acknowledged.len()
                ),
            ))
        }
    }
}
