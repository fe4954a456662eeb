//! What a run's records say beyond the history checker: lost updates of the protected counter,
//! and liveness figures.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use redlock_history::{read_jsonl, Event};
use serde::{Deserialize, Serialize};

/// Loads and merges JSON-lines histories exactly as `redlock-check-history` does: the first
/// `Config` (all must agree), then every other event stably sorted by `rt` (ties keep file order,
/// then line order).
pub fn load_histories(paths: &[impl AsRef<Path>]) -> Result<Vec<Event>, String> {
    let mut config: Option<Event> = None;
    let mut merged = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let events =
            read_jsonl(BufReader::new(file)).map_err(|e| format!("{}: {e}", path.display()))?;
        for (line, event) in events {
            if matches!(event, Event::Config { .. }) {
                match &config {
                    None => config = Some(event),
                    Some(first) if *first != event => {
                        return Err(format!(
                            "{}:{line}: Config disagrees with an earlier one",
                            path.display()
                        ))
                    }
                    Some(_) => {}
                }
                continue;
            }
            merged.push(event);
        }
    }
    let config = config.ok_or("no Config line in any history file")?;
    merged.sort_by_key(|e| e.rt().unwrap_or(0));
    let mut events = Vec::with_capacity(merged.len() + 1);
    events.push(config);
    events.extend(merged);
    Ok(events)
}

/// One write found in a protected counter's log that did not add one to the value before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleWrite {
    /// Position in the log (0-based).
    pub position: usize,
    /// The acquisition that wrote it.
    pub acq: u64,
    /// The value it wrote.
    pub value: i64,
    /// The value the write before it left.
    pub previous: i64,
}

/// The protected counter of one resource, checked against its write log.
///
/// Every holder reads the counter, works, and writes `read + 1` together with a log entry
/// `"<acq>:<value>"` (one `MULTI`). Under mutual exclusion the log reads 1, 2, 3, ... and the
/// counter equals the number of writes; every write that reused a stale read shows up as a
/// [`StaleWrite`] and as a lost update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterCheck {
    /// The resource.
    pub resource: String,
    /// Writes in the log.
    pub writes: u64,
    /// The counter's final value.
    pub final_value: i64,
    /// `writes - final_value`: increments that were overwritten.
    pub lost_updates: i64,
    /// Writes that did not add one to the previous value.
    pub stale_writes: Vec<StaleWrite>,
    /// Log entries that could not be parsed (always 0 unless the log was tampered with).
    pub malformed: u64,
}

impl CounterCheck {
    /// Checks `log` (oldest first) against the counter's final value.
    pub fn new(resource: &str, log: &[String], final_value: i64) -> Self {
        let mut check = CounterCheck {
            resource: resource.to_owned(),
            final_value,
            ..Self::default()
        };
        let mut previous = 0i64;
        for (position, entry) in log.iter().enumerate() {
            let parsed = entry
                .split_once(':')
                .and_then(|(a, v)| Some((a.parse::<u64>().ok()?, v.parse::<i64>().ok()?)));
            let Some((acq, value)) = parsed else {
                check.malformed += 1;
                continue;
            };
            check.writes += 1;
            if value != previous + 1 {
                check.stale_writes.push(StaleWrite {
                    position,
                    acq,
                    value,
                    previous,
                });
            }
            previous = value;
        }
        check.lost_updates = i64::try_from(check.writes).unwrap_or(i64::MAX) - final_value;
        check
    }
}

/// The resources of every acquisition, and its client.
fn acquisitions(events: &[Event]) -> BTreeMap<u64, (u64, BTreeSet<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AcqInvoke {
                acq,
                client,
                resources,
                ..
            } => Some((*acq, (*client, resources.iter().cloned().collect()))),
            _ => None,
        })
        .collect()
}

/// How long until someone else acquired after a lock holder was killed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// The acquisition whose holder was killed.
    pub acq: u64,
    /// When the holder was killed (`rt`).
    pub killed_at: u64,
    /// The first acquisition of a shared resource by another client after the kill, if any.
    pub next_acq: Option<u64>,
    /// Milliseconds from the kill to that `AcqOk`.
    pub after_ms: Option<u64>,
}

/// For each killed holder (`acq`, kill time), the first later `AcqOk` of another client on a
/// resource it held.
pub fn recoveries(events: &[Event], kills: &[(u64, u64)]) -> Vec<Recovery> {
    let acqs = acquisitions(events);
    kills
        .iter()
        .map(|&(acq, killed_at)| {
            let (client, resources) = acqs.get(&acq).cloned().unwrap_or_default();
            let next = events.iter().find_map(|e| match e {
                Event::AcqOk { acq: other, rt, .. } if *rt >= killed_at && *other != acq => {
                    let (c, rs) = acqs.get(other)?;
                    (*c != client && !rs.is_disjoint(&resources)).then_some((*other, *rt))
                }
                _ => None,
            });
            Recovery {
                acq,
                killed_at,
                next_acq: next.map(|n| n.0),
                after_ms: next.map(|n| n.1 - killed_at),
            }
        })
        .collect()
}

/// A stretch of the run without any successful acquisition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Start (`rt`): an `AcqOk`, or the start of the window.
    pub from: u64,
    /// End (`rt`): the next `AcqOk`, or the end of the window.
    pub to: u64,
}

impl Gap {
    /// Its length in milliseconds.
    pub fn ms(&self) -> u64 {
        self.to.saturating_sub(self.from)
    }
}

/// The longest stretch of `[start, end]` without an `AcqOk`, ignoring the parts covered by
/// `excluded` windows (e.g. a majority of instances down, where no progress is expected).
pub fn longest_gap(events: &[Event], start: u64, end: u64, excluded: &[(u64, u64)]) -> Gap {
    let mut points: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::AcqOk { rt, .. } if *rt >= start && *rt <= end => Some(*rt),
            _ => None,
        })
        .collect();
    points.push(start);
    points.push(end);
    points.sort_unstable();
    let mut best = Gap::default();
    let mut best_len = 0;
    for w in points.windows(2) {
        let gap = Gap {
            from: w[0],
            to: w[1],
        };
        let covered: u64 = excluded
            .iter()
            .map(|&(a, b)| b.min(gap.to).saturating_sub(a.max(gap.from)))
            .sum();
        let len = gap.ms().saturating_sub(covered);
        if len > best_len {
            best_len = len;
            best = gap;
        }
    }
    best
}

/// Simple order statistics of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Sample size.
    pub n: usize,
    /// Smallest.
    pub min: u64,
    /// Median (lower).
    pub median: u64,
    /// 95th percentile (nearest rank).
    pub p95: u64,
    /// Largest.
    pub max: u64,
}

impl Stats {
    /// The statistics of `sample` (all zero when empty).
    pub fn of(sample: &[u64]) -> Self {
        if sample.is_empty() {
            return Self::default();
        }
        let mut s = sample.to_vec();
        s.sort_unstable();
        let rank = |p: usize| {
            s[((s.len() * p).div_ceil(100))
                .saturating_sub(1)
                .min(s.len() - 1)]
        };
        Stats {
            n: s.len(),
            min: s[0],
            median: s[(s.len() - 1) / 2],
            p95: rank(95),
            max: s[s.len() - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_exact_counter_has_no_lost_update() {
        let c = CounterCheck::new("r", &log(&["1:1", "2:2", "7:3"]), 3);
        assert_eq!((c.writes, c.lost_updates, c.malformed), (3, 0, 0));
        assert!(c.stale_writes.is_empty());
    }

    #[test]
    fn a_write_from_a_stale_read_is_a_lost_update() {
        // Acquisition 5 read 1 before 2 wrote 2, and wrote 2 again afterwards.
        let c = CounterCheck::new("r", &log(&["1:1", "2:2", "5:2", "6:3"]), 3);
        assert_eq!(c.lost_updates, 1);
        assert_eq!(
            c.stale_writes,
            vec![StaleWrite {
                position: 2,
                acq: 5,
                value: 2,
                previous: 2
            }]
        );
        // Going back also shows up.
        let c = CounterCheck::new("r", &log(&["1:1", "2:2", "3:3", "4:2", "x"]), 2);
        assert_eq!(
            (c.lost_updates, c.stale_writes.len(), c.malformed),
            (2, 1, 1)
        );
    }

    fn acq(acq: u64, client: u64, r: &str) -> Event {
        Event::AcqInvoke {
            acq,
            client,
            resources: vec![r.to_owned()],
            ttl_ms: 1000,
            rt: 0,
        }
    }

    fn ok(acq: u64, rt: u64) -> Event {
        Event::AcqOk {
            acq,
            attempt: 1,
            value: String::new(),
            valid_until_client: 0,
            t1_client: 0,
            t2_client: 0,
            validity_ms: 0,
            votes: vec![],
            rt,
            valid_until_rt: None,
        }
    }

    #[test]
    fn recovery_is_the_next_acquisition_of_a_shared_resource_by_another_client() {
        let events = vec![
            acq(1, 1, "a"),
            acq(2, 2, "b"),
            acq(3, 1, "a"),
            acq(4, 3, "a"),
            ok(1, 10),
            ok(2, 120),
            ok(3, 130),
            ok(4, 900),
        ];
        let r = recoveries(&events, &[(1, 100)]);
        assert_eq!(r[0].next_acq, Some(4));
        assert_eq!(r[0].after_ms, Some(800));
        assert_eq!(recoveries(&events, &[(4, 950)])[0].after_ms, None);
    }

    #[test]
    fn gaps_skip_excluded_windows() {
        let events = vec![ok(1, 100), ok(2, 200), ok(3, 1200), ok(4, 1500)];
        assert_eq!(
            longest_gap(&events, 0, 2000, &[]),
            Gap {
                from: 200,
                to: 1200
            }
        );
        let g = longest_gap(&events, 0, 2000, &[(150, 1150)]);
        assert_eq!(
            g,
            Gap {
                from: 1500,
                to: 2000
            }
        );
        assert_eq!(Stats::of(&[5, 1, 3]).median, 3);
        assert_eq!(Stats::of(&[]).n, 0);
    }
}
