//! `tgvault user`, `token` and `case member`: who may act on the archive.

use super::{Outcome, emit, w};
use crate::error::Result;
use crate::service::{Principal, Service};
use crate::time::iso;
use clap::Subcommand;
use serde_json::json;
use std::io::Write;

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Add a user with one or more roles (compliance-admin, records-manager,
    /// import-export, ediscovery-manager, ediscovery-admin, reviewer,
    /// audit-reader)
    Add {
        name: String,
        #[arg(long = "role", value_name = "ROLE", required = true)]
        roles: Vec<String>,
        /// The OS account that acts as this user through the server's socket
        #[arg(long, value_name = "USER")]
        os_user: Option<String>,
    },
    /// List users, their roles and cases
    List(super::JsonFlag),
    /// Grant or withdraw a role
    Role {
        #[command(subcommand)]
        action: RoleAction,
    },
    /// Remove a user, its tokens and its case memberships
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
pub enum RoleAction {
    Add { user: String, role: String },
    Remove { user: String, role: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Create an API token acting as USER; it is printed once, and only a
    /// slow salted hash of it is kept
    Create {
        user: String,
        #[arg(long, value_name = "N")]
        expires_days: Option<u32>,
        #[command(flatten)]
        out: super::JsonFlag,
    },
    /// Revoke a token by its id
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum MemberAction {
    Add { case: String, user: String },
    Remove { case: String, user: String },
}

pub fn user(
    out: &mut (impl Write + ?Sized),
    service: &Service,
    who: &Principal,
    action: UserAction,
) -> Result<Outcome> {
    match action {
        UserAction::Add {
            name,
            roles,
            os_user,
        } => {
            service.user_add(who, &name, &roles, os_user.as_deref())?;
            w(
                out,
                format_args!("user '{name}' added: {}\n", roles.join(", ")),
            )?;
        }
        UserAction::List(f) => {
            for u in service.users(who)? {
                if f.json {
                    emit(
                        out,
                        &json!({"user": u.name, "roles": u.roles, "os_user": u.os_user,
                            "cases": u.cases, "created": iso(u.created), "actor": u.actor}),
                    )?;
                } else {
                    w(
                        out,
                        format_args!(
                            "{:<24} {:<40} {}{}\n",
                            u.name,
                            u.roles.join(","),
                            u.os_user.map(|o| format!("os:{o} ")).unwrap_or_default(),
                            if u.cases.is_empty() {
                                String::new()
                            } else {
                                format!("cases: {}", u.cases.join(", "))
                            }
                        ),
                    )?;
                }
            }
        }
        UserAction::Role {
            action: RoleAction::Add { user, role },
        } => {
            service.user_role(who, &user, &role, true)?;
            w(out, format_args!("user '{user}' holds role {role}\n"))?;
        }
        UserAction::Role {
            action: RoleAction::Remove { user, role },
        } => {
            service.user_role(who, &user, &role, false)?;
            w(
                out,
                format_args!("user '{user}' no longer holds role {role}\n"),
            )?;
        }
        UserAction::Remove { name } => {
            service.user_remove(who, &name)?;
            w(out, format_args!("user '{name}' removed\n"))?;
        }
    }
    Ok(Outcome::Ok)
}

pub fn token(
    out: &mut (impl Write + ?Sized),
    service: &Service,
    who: &Principal,
    action: TokenAction,
) -> Result<Outcome> {
    match action {
        TokenAction::Create {
            user,
            expires_days,
            out: f,
        } => {
            let t = service.token_create(who, &user, expires_days)?;
            if f.json {
                emit(
                    out,
                    &json!({"id": t.id, "user": t.user, "token": t.token, "expires": t.expires.map(iso)}),
                )?;
            } else {
                w(out, format_args!("{}\n", t.token))?;
                eprintln!(
                    "token {} for user '{}'{}: shown this once, keep it safe",
                    t.id,
                    t.user,
                    t.expires
                        .map(|e| format!(", expires {}", iso(e)))
                        .unwrap_or_default()
                );
            }
        }
        TokenAction::Revoke { id } => {
            service.token_revoke(who, &id)?;
            w(out, format_args!("token {id} revoked\n"))?;
        }
    }
    Ok(Outcome::Ok)
}

pub fn member(
    out: &mut (impl Write + ?Sized),
    service: &Service,
    who: &Principal,
    action: MemberAction,
) -> Result<Outcome> {
    match action {
        MemberAction::Add { case, user } => {
            service.case_member(who, &case, &user, true)?;
            w(out, format_args!("case '{case}': {user} is a member\n"))?;
        }
        MemberAction::Remove { case, user } => {
            service.case_member(who, &case, &user, false)?;
            w(
                out,
                format_args!("case '{case}': {user} is no longer a member\n"),
            )?;
        }
    }
    Ok(Outcome::Ok)
}
