//! Holds and retention: the pure decision of whether an item may be deleted
//! now, and why. No I/O: the caller passes the item's facts, the holds and
//! policies in force, the time, and whether the item matches each query hold
//! (which needs the search index).
//!
//! The rules, as Purview applies them:
//! - **Holds come first.** An item under any hold is never deleted. A litigation
//!   hold covers a whole mailbox, forever or for N days counted from each item's
//!   date. A case hold covers named mailboxes, optionally limited by a query and
//!   a date range; an item that could not be indexed is held even under a query
//!   hold. Several holds are ORed; an unconditional one is named first.
//! - **Retention principles**, in order:
//!   1. retention wins over deletion: nothing is deleted while a policy still
//!      retains it;
//!   2. the longest retention period wins;
//!   3. explicit inclusion wins over implicit: a deletion from a policy scoped to
//!      the item's mailbox beats one from an organisation-wide policy;
//!   4. the shortest deletion period wins among the remaining deletions.
//!
//! An item whose date is unknown is never deleted by a policy (its periods
//! cannot be counted) and is held by any time-limited litigation hold.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a decision needs to know about an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub mailbox: String,
    /// UTC seconds; `None` when the source gave only a placeholder.
    pub date: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hold {
    /// A mailbox-wide litigation hold, forever (`days: None`) or for `days`
    /// after each item's date.
    Litigation { mailbox: String, days: Option<u32> },
    /// An eDiscovery case hold.
    Case {
        case: String,
        id: String,
        mailboxes: Vec<String>,
        /// The KQL the hold is limited to, if any.
        query: Option<String>,
        /// Item dates covered: `from` inclusive, `to` exclusive (UTC seconds).
        from: Option<i64>,
        to: Option<i64>,
    },
}

/// Whether an item matches a query hold's query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    Yes,
    No,
    /// The item could not be indexed: held, as Purview does.
    Unindexed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Retain { days: u32 },
    Delete { days: u32 },
    RetainThenDelete { days: u32 },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = self.days();
        let unit = if days == 1 { "day" } else { "days" };
        match self {
            Action::Retain { .. } => write!(f, "retain {days} {unit}"),
            Action::Delete { .. } => write!(f, "delete after {days} {unit}"),
            Action::RetainThenDelete { .. } => write!(f, "retain {days} {unit}, then delete"),
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    /// Reads back what `Display` writes (as the audit trail holds it).
    fn from_str(s: &str) -> Result<Action, String> {
        let bad = || format!("'{s}' is not a retention action");
        let days = |t: &str| -> Result<u32, String> {
            let n = t
                .strip_suffix(" days")
                .or_else(|| t.strip_suffix(" day"))
                .ok_or_else(bad)?;
            n.parse().map_err(|_| bad())
        };
        if let Some(rest) = s.strip_prefix("delete after ") {
            return Ok(Action::Delete { days: days(rest)? });
        }
        let rest = s.strip_prefix("retain ").ok_or_else(bad)?;
        match rest.strip_suffix(", then delete") {
            Some(d) => Ok(Action::RetainThenDelete { days: days(d)? }),
            None => Ok(Action::Retain { days: days(rest)? }),
        }
    }
}

impl Action {
    fn days(&self) -> u32 {
        match self {
            Action::Retain { days }
            | Action::Delete { days }
            | Action::RetainThenDelete { days } => *days,
        }
    }
    fn retains(&self) -> bool {
        matches!(
            self,
            Action::Retain { .. } | Action::RetainThenDelete { .. }
        )
    }
    fn deletes(&self) -> bool {
        matches!(
            self,
            Action::Delete { .. } | Action::RetainThenDelete { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub action: Action,
    /// The mailboxes it names; empty: organisation-wide.
    pub mailboxes: Vec<String>,
}

impl Policy {
    fn applies(&self, mailbox: &str) -> bool {
        self.mailboxes.is_empty() || self.explicit_for(mailbox)
    }
    fn explicit_for(&self, mailbox: &str) -> bool {
        self.mailboxes
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mailbox))
    }
}

/// Which rule decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principle {
    /// A hold applies: never deleted.
    Hold,
    /// Principle 1: a retention period has not ended, though a deletion is due.
    RetentionWinsOverDeletion,
    /// Principle 2: the longest of several retention periods has not ended.
    LongestRetention,
    /// A single retention period has not ended.
    RetentionPeriod,
    /// Principle 3: the mailbox-scoped deletion beat an organisation-wide one.
    ExplicitInclusion,
    /// Principle 4: the shortest of several deletion periods.
    ShortestDeletion,
    /// The one deletion period that applies.
    DeletionPeriod,
    /// No policy deletes the item.
    NoDeletionPolicy,
    /// The item has no date, so no period can be counted.
    UnknownDate,
    /// A period's end is past the last time that can be counted.
    UncountablePeriod,
}

impl Principle {
    pub fn describe(&self) -> &'static str {
        match self {
            Principle::Hold => "an item on hold is never deleted",
            Principle::RetentionWinsOverDeletion => "principle 1: retention wins over deletion",
            Principle::LongestRetention => "principle 2: the longest retention period wins",
            Principle::RetentionPeriod => "the retention period has not ended",
            Principle::ExplicitInclusion => "principle 3: explicit inclusion wins over implicit",
            Principle::ShortestDeletion => "principle 4: the shortest deletion period wins",
            Principle::DeletionPeriod => "the deletion period applies",
            Principle::NoDeletionPolicy => "no policy deletes it",
            Principle::UnknownDate => "the item has no date, so no period can be counted",
            Principle::UncountablePeriod => {
                "a period's end cannot be computed (the item's date plus its days passes the last time that can be counted), so the item is kept"
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// May be deleted now.
    Delete,
    /// Kept; `until` is when it may next become deletable, if known.
    Keep { until: Option<i64> },
}

/// The decision with everything that led to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub principle: Principle,
    /// Every hold that applies, unconditional ones first.
    pub holds: Vec<String>,
    /// Every policy that applies, with its dates.
    pub policies: Vec<Applied>,
    /// The policy whose deletion period decided (for `Delete`, and for a
    /// `Keep` that a deletion period will end).
    pub by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub name: String,
    pub action: Action,
    pub explicit: bool,
    /// When its period ends (item date + days).
    pub ends: End,
}

/// When a policy's period ends for an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    At(i64),
    /// The item has no date.
    NoDate,
    /// The item's date plus the period is past the last second an `i64`
    /// counts: no end can be computed, so the item is kept.
    Uncountable,
}

impl End {
    pub fn at(self) -> Option<i64> {
        match self {
            End::At(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::At(t) => f.write_str(&iso(*t)),
            End::NoDate => f.write_str("unknown (the item has no date)"),
            End::Uncountable => f.write_str("past the last time that can be counted"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.verdict {
            Verdict::Delete => write!(f, "may be deleted now")?,
            Verdict::Keep { until: Some(t) } => write!(f, "kept until {}", iso(t))?,
            Verdict::Keep { until: None } => write!(f, "kept")?,
        }
        write!(f, ": {}", self.principle.describe())?;
        for h in &self.holds {
            write!(f, "\n  hold: {h}")?;
        }
        for p in &self.policies {
            let scope = if p.explicit {
                "this mailbox"
            } else {
                "organisation-wide"
            };
            write!(
                f,
                "\n  policy {} ({}, {scope}): period ends {}",
                p.name, p.action, p.ends
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Litigation { mailbox, days } => match days {
                Some(d) => write!(
                    f,
                    "litigation hold on {mailbox}, {d} days from each item's date"
                ),
                None => write!(f, "litigation hold on {mailbox}, no end"),
            },
            Hold::Case {
                case,
                id,
                mailboxes,
                query,
                from,
                to,
            } => {
                write!(f, "case {case} hold {id}: {}", mailboxes.join(", "))?;
                if let Some(q) = query {
                    write!(f, ", query {q}")?;
                }
                if let Some(t) = from {
                    write!(f, ", from {}", iso(*t))?;
                }
                if let Some(t) = to {
                    write!(f, ", before {}", iso(*t))?;
                }
                Ok(())
            }
        }
    }
}

use crate::time::{after_days, iso};

/// The holds among `holds` that cover the item at `now`, unconditional first.
pub fn applying_holds(
    item: &Facts,
    holds: &[Hold],
    now: i64,
    query_match: &dyn Fn(usize) -> Match,
) -> Vec<String> {
    let mut unconditional = Vec::new();
    let mut conditional = Vec::new();
    for (i, h) in holds.iter().enumerate() {
        match h {
            Hold::Litigation { mailbox, days } => {
                if !mailbox.eq_ignore_ascii_case(&item.mailbox) {
                    continue;
                }
                match (days, item.date) {
                    (None, _) => unconditional.push(format!("litigation hold on {mailbox}, no end")),
                    (Some(d), Some(date)) => match after_days(date, *d) {
                        Some(end) if now < end => unconditional.push(format!(
                            "litigation hold on {mailbox}, {d} days from the item's date (until {})",
                            iso(end)
                        )),
                        Some(_) => {}
                        None => unconditional.push(format!(
                            "litigation hold on {mailbox}, {d} days from the item's date ({}): \
                             the end is past the last time that can be counted, so it stays held",
                            iso(date)
                        )),
                    },
                    (Some(d), None) => unconditional.push(format!(
                        "litigation hold on {mailbox}, {d} days: the item has no date, so it stays held"
                    )),
                }
            }
            Hold::Case {
                case,
                id,
                mailboxes,
                query,
                from,
                to,
            } => {
                if !mailboxes
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&item.mailbox))
                {
                    continue;
                }
                let in_range = match item.date {
                    Some(d) => from.is_none_or(|f| d >= f) && to.is_none_or(|t| d < t),
                    // Without a date, a date-limited hold cannot rule the item out.
                    None => true,
                };
                if !in_range {
                    continue;
                }
                match query {
                    None => unconditional.push(format!("case {case} hold {id} (no query)")),
                    Some(q) => match query_match(i) {
                        Match::Yes => conditional.push(format!("case {case} hold {id}: matches {q}")),
                        Match::Unindexed => conditional.push(format!(
                            "case {case} hold {id}: the item could not be indexed, so the query hold keeps it"
                        )),
                        Match::No => {}
                    },
                }
            }
        }
    }
    unconditional.extend(conditional);
    unconditional
}

/// Decides whether `item` may be deleted at `now`.
pub fn decide(
    item: &Facts,
    holds: &[Hold],
    policies: &[Policy],
    now: i64,
    query_match: &dyn Fn(usize) -> Match,
) -> Decision {
    let held = applying_holds(item, holds, now, query_match);
    let applied: Vec<Applied> = policies
        .iter()
        .filter(|p| p.applies(&item.mailbox))
        .map(|p| Applied {
            name: p.name.clone(),
            action: p.action,
            explicit: p.explicit_for(&item.mailbox),
            ends: match item.date {
                None => End::NoDate,
                Some(d) => after_days(d, p.action.days()).map_or(End::Uncountable, End::At),
            },
        })
        .collect();
    let decision = |verdict, principle| Decision {
        verdict,
        principle,
        holds: held.clone(),
        policies: applied.clone(),
        by: None,
    };
    if !held.is_empty() {
        return decision(Verdict::Keep { until: None }, Principle::Hold);
    }
    if applied.is_empty() {
        return decision(Verdict::Keep { until: None }, Principle::NoDeletionPolicy);
    }
    if item.date.is_none() {
        return decision(Verdict::Keep { until: None }, Principle::UnknownDate);
    }
    if applied.iter().any(|a| a.ends == End::Uncountable) {
        return decision(Verdict::Keep { until: None }, Principle::UncountablePeriod);
    }
    let retainers: Vec<&Applied> = applied.iter().filter(|a| a.action.retains()).collect();
    let deleters: Vec<&Applied> = applied.iter().filter(|a| a.action.deletes()).collect();
    let retain_until = retainers.iter().filter_map(|a| a.ends.at()).max();

    // Which deletion applies: principles 3 and 4.
    let explicit: Vec<&&Applied> = deleters.iter().filter(|a| a.explicit).collect();
    let implicit_too = deleters.iter().any(|a| !a.explicit);
    let chosen: Vec<&Applied> = if explicit.is_empty() {
        deleters.clone()
    } else {
        explicit.into_iter().copied().collect()
    };
    let delete_at = chosen.iter().filter_map(|a| a.ends.at()).min();
    let by = chosen
        .iter()
        .filter(|a| a.ends.at() == delete_at)
        .map(|a| a.name.clone())
        .next();
    let deletion_rule = if chosen.iter().any(|a| a.explicit) && implicit_too {
        Principle::ExplicitInclusion
    } else if chosen.len() > 1 {
        Principle::ShortestDeletion
    } else {
        Principle::DeletionPeriod
    };

    // Principles 1 and 2: nothing goes while a retention period runs.
    if let Some(until) = retain_until
        && now < until
    {
        let principle = if delete_at.is_some_and(|d| d < until) {
            Principle::RetentionWinsOverDeletion
        } else if retainers.len() > 1 {
            Principle::LongestRetention
        } else {
            Principle::RetentionPeriod
        };
        let next = delete_at.map(|d| d.max(until));
        return decision(Verdict::Keep { until: next }, principle);
    }
    let mut out = match delete_at {
        None => decision(Verdict::Keep { until: None }, Principle::NoDeletionPolicy),
        Some(at) if now >= at => decision(Verdict::Delete, deletion_rule),
        Some(at) => decision(Verdict::Keep { until: Some(at) }, deletion_rule),
    };
    if delete_at.is_some() {
        out.by = by;
    }
    out
}

#[cfg(test)]
mod tests;
