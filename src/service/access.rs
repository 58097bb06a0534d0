//! Who may do what: Purview's role groups as tgvault's roles, and the pure
//! decision whether a principal's roles permit an operation. Nothing here
//! reads the archive; the caller says which cases the principal belongs to.

use serde::Serialize;
use std::collections::BTreeSet;

/// A role, named as Purview names the role group it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Organization Management / Compliance Administrator: everything.
    ComplianceAdmin,
    /// Records Management: retention policies and runs, explain.
    RecordsManager,
    /// Mailbox Import Export: imports, the quarantine and its remap.
    ImportExport,
    /// eDiscovery Manager: searches the archive, creates cases, and in the
    /// cases it is a member of places holds, searches and exports.
    EdiscoveryManager,
    /// eDiscovery Administrator: an eDiscovery Manager of every case.
    EdiscoveryAdmin,
    /// Reviewer: searches and views items only within its cases.
    Reviewer,
    /// Audit Reader: the audit trail, nothing else.
    AuditReader,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::ComplianceAdmin,
        Role::RecordsManager,
        Role::ImportExport,
        Role::EdiscoveryManager,
        Role::EdiscoveryAdmin,
        Role::Reviewer,
        Role::AuditReader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::ComplianceAdmin => "compliance-admin",
            Role::RecordsManager => "records-manager",
            Role::ImportExport => "import-export",
            Role::EdiscoveryManager => "ediscovery-manager",
            Role::EdiscoveryAdmin => "ediscovery-admin",
            Role::Reviewer => "reviewer",
            Role::AuditReader => "audit-reader",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every operation the service offers, with the case it acts in where it
/// acts in one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Create an archive, rebuild its index, verify, back up, restore,
    /// recover, compact: the archive's own upkeep.
    Maintain,
    /// Manage users, roles and tokens.
    ManageUsers,
    Import,
    /// Add, change, remove, run and read connectors and their admin log.
    Connectors,
    /// Add, change, remove, run and read forwarding targets and their
    /// ledgers (compliance administrators only: it sends the archive out).
    Forward,
    /// List the quarantine, and remap it.
    Quarantine,
    /// Runs: imports, remaps, retention runs.
    Runs,
    /// Mailboxes and their folders' contents.
    Browse,
    /// Search the whole archive, and view any item.
    Search,
    /// Search and view within a case.
    CaseSearch(&'a str),
    LitigationHold,
    /// List holds in force.
    HoldList,
    CaseCreate,
    /// List cases, and show one.
    CaseRead(&'a str),
    /// Place or release a case's holds, close it.
    CaseHold(&'a str),
    CaseMembers(&'a str),
    CaseExport(&'a str),
    /// Export outside any case.
    Export,
    Retention,
    Explain,
    Audit,
}

impl Op<'_> {
    /// How the audit trail names the operation.
    pub fn name(&self) -> String {
        let (what, case) = match self {
            Op::Maintain => ("maintain", None),
            Op::ManageUsers => ("manage users", None),
            Op::Import => ("import", None),
            Op::Connectors => ("connectors", None),
            Op::Forward => ("forward", None),
            Op::Quarantine => ("quarantine", None),
            Op::Runs => ("runs", None),
            Op::Browse => ("browse", None),
            Op::Search => ("search", None),
            Op::CaseSearch(c) => ("search in case", Some(c)),
            Op::LitigationHold => ("litigation hold", None),
            Op::HoldList => ("hold list", None),
            Op::CaseCreate => ("case create", None),
            Op::CaseRead(c) => ("case read", Some(c)),
            Op::CaseHold(c) => ("case hold", Some(c)),
            Op::CaseMembers(c) => ("case members", Some(c)),
            Op::CaseExport(c) => ("export in case", Some(c)),
            Op::Export => ("export", None),
            Op::Retention => ("retention", None),
            Op::Explain => ("explain", None),
            Op::Audit => ("audit", None),
        };
        match case {
            Some(c) => format!("{what} '{c}'"),
            None => what.to_string(),
        }
    }
}

/// Whether `roles`, with membership of the cases `member_of`, permit `op`.
/// Least privilege: no role permits nothing; roles add up.
pub fn permits(roles: &BTreeSet<Role>, member_of: &BTreeSet<String>, op: Op) -> bool {
    roles.iter().any(|r| role_permits(*r, member_of, op))
}

fn role_permits(role: Role, member_of: &BTreeSet<String>, op: Op) -> bool {
    let member = |c: &str| member_of.contains(c);
    match role {
        Role::ComplianceAdmin => true,
        Role::RecordsManager => matches!(op, Op::Retention | Op::Explain | Op::HoldList | Op::Runs),
        Role::ImportExport => {
            matches!(op, Op::Import | Op::Connectors | Op::Quarantine | Op::Runs)
        }
        Role::EdiscoveryAdmin => matches!(
            op,
            Op::Search
                | Op::Browse
                | Op::HoldList
                | Op::CaseCreate
                | Op::CaseSearch(_)
                | Op::CaseRead(_)
                | Op::CaseHold(_)
                | Op::CaseMembers(_)
                | Op::CaseExport(_)
        ),
        Role::EdiscoveryManager => match op {
            Op::Search | Op::Browse | Op::CaseCreate => true,
            Op::CaseSearch(c)
            | Op::CaseRead(c)
            | Op::CaseHold(c)
            | Op::CaseMembers(c)
            | Op::CaseExport(c) => member(c),
            _ => false,
        },
        Role::Reviewer => match op {
            Op::CaseSearch(c) | Op::CaseRead(c) => member(c),
            _ => false,
        },
        Role::AuditReader => matches!(op, Op::Audit),
    }
}

/// Whether the roles see every case (and not only those they are members of).
pub fn sees_every_case(roles: &BTreeSet<Role>) -> bool {
    roles.contains(&Role::ComplianceAdmin) || roles.contains(&Role::EdiscoveryAdmin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPS: [Op<'static>; 21] = [
        Op::Maintain,
        Op::ManageUsers,
        Op::Import,
        Op::Connectors,
        Op::Forward,
        Op::Quarantine,
        Op::Runs,
        Op::Browse,
        Op::Search,
        Op::CaseSearch("A"),
        Op::LitigationHold,
        Op::HoldList,
        Op::CaseCreate,
        Op::CaseRead("A"),
        Op::CaseHold("A"),
        Op::CaseMembers("A"),
        Op::CaseExport("A"),
        Op::Export,
        Op::Retention,
        Op::Explain,
        Op::Audit,
    ];

    fn set(roles: &[Role]) -> BTreeSet<Role> {
        roles.iter().copied().collect()
    }

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.name()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn no_role_permits_nothing_and_roles_add_up() {
        let cases: BTreeSet<String> = ["A".to_string()].into();
        for op in OPS {
            assert!(!permits(&BTreeSet::new(), &cases, op), "{op:?}");
            for a in Role::ALL {
                for b in Role::ALL {
                    let either = permits(&set(&[a]), &cases, op) || permits(&set(&[b]), &cases, op);
                    assert_eq!(permits(&set(&[a, b]), &cases, op), either);
                }
            }
        }
    }

    #[test]
    fn case_roles_act_only_in_their_cases() {
        let none = BTreeSet::new();
        let a: BTreeSet<String> = ["A".to_string()].into();
        for role in [Role::EdiscoveryManager, Role::Reviewer] {
            assert!(permits(&set(&[role]), &a, Op::CaseSearch("A")));
            assert!(!permits(&set(&[role]), &none, Op::CaseSearch("A")));
            assert!(!permits(&set(&[role]), &a, Op::CaseSearch("B")));
        }
        assert!(permits(
            &set(&[Role::EdiscoveryAdmin]),
            &none,
            Op::CaseExport("B")
        ));
        let reviewer = set(&[Role::Reviewer]);
        for op in [
            Op::Search,
            Op::CaseHold("A"),
            Op::CaseExport("A"),
            Op::Export,
        ] {
            assert!(!permits(&reviewer, &a, op), "{op:?}");
        }
    }

    #[test]
    fn the_audit_reader_reads_the_trail_only() {
        let r = set(&[Role::AuditReader]);
        let a: BTreeSet<String> = ["A".to_string()].into();
        let allowed: Vec<_> = OPS.into_iter().filter(|op| permits(&r, &a, *op)).collect();
        assert_eq!(allowed, vec![Op::Audit]);
    }
}
