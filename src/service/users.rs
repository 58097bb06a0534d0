//! Users, their roles, case memberships and API tokens: each operation
//! checked, acted and audited in one transaction. A token is shown once; the
//! archive keeps only an Argon2id hash of its secret.

use super::access::{Op, Role};
use super::{Principal, Service, p};
use crate::error::{Error, Result};
use crate::store::records::{MemberRecord, TokenRecord, UserRecord};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use serde::Serialize;
use std::collections::BTreeSet;

/// How a token starts: `tgv_ID_SECRET`.
const TOKEN_PREFIX: &str = "tgv_";

#[derive(Clone, Debug, Serialize)]
pub struct UserView {
    pub name: String,
    pub roles: Vec<String>,
    pub os_user: Option<String>,
    pub created: i64,
    pub actor: String,
    /// The cases it is a member of.
    pub cases: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NewToken {
    pub id: String,
    pub user: String,
    /// The whole token, shown this once.
    pub token: String,
    pub expires: Option<i64>,
}

/// A user name: what an audit entry and a URL can carry as it is.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok && !name.starts_with('.') {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{what} '{name}': use 1 to 64 letters, digits, '-', '_', '.' or '@'"
        )))
    }
}

pub fn parse_roles(roles: &[String]) -> Result<BTreeSet<Role>> {
    roles
        .iter()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                let names: Vec<_> = Role::ALL.iter().map(|r| r.name()).collect();
                Error::Usage(format!("'{r}' is not a role (roles: {})", names.join(", ")))
            })
        })
        .collect()
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("random bytes: {e}")))?;
    Ok(b)
}

impl Service {
    pub fn user_add(
        &self,
        who: &Principal,
        name: &str,
        roles: &[String],
        os_user: Option<&str>,
    ) -> Result<()> {
        self.check(who, Op::ManageUsers)?;
        check_name("user", name)?;
        let roles = parse_roles(roles)?;
        let rec = UserRecord {
            roles: roles.iter().map(|r| r.name().to_string()).collect(),
            os_user: os_user.map(str::to_string),
            created: self.now(),
            actor: who.actor(),
        };
        let mut params = vec![p("user", name)];
        params.extend(rec.roles.iter().map(|r| p("role", r)));
        params.extend(os_user.map(|u| p("os_user", u)));
        self.archive.write(|tx| {
            if tx.user(name)?.is_some() {
                return Err(Error::Conflict(format!("user '{name}' exists")));
            }
            if let Some(u) = os_user
                && let Some((other, _)) = self.user_with_os(u)?
            {
                return Err(Error::Conflict(format!(
                    "OS user '{u}' acts as user '{other}' already"
                )));
            }
            tx.put_user(name, &rec)?;
            tx.audit(self.event(who, "user add", params, "ok"))?;
            Ok(())
        })
    }

    fn user_with_os(&self, os_user: &str) -> Result<Option<(String, UserRecord)>> {
        Ok(self
            .archive
            .users()?
            .into_iter()
            .find(|(_, u)| u.os_user.as_deref() == Some(os_user)))
    }

    pub fn users(&self, who: &Principal) -> Result<Vec<UserView>> {
        self.check(who, Op::ManageUsers)?;
        self.record_read(who, "user list", vec![])?;
        let members = self.archive.members()?;
        Ok(self
            .archive
            .users()?
            .into_iter()
            .map(|(name, u)| UserView {
                cases: members
                    .iter()
                    .filter(|(_, m, _)| *m == name)
                    .map(|(c, _, _)| c.clone())
                    .collect(),
                name,
                roles: u.roles,
                os_user: u.os_user,
                created: u.created,
                actor: u.actor,
            })
            .collect())
    }

    /// Grants (`add`) or withdraws a role.
    pub fn user_role(&self, who: &Principal, name: &str, role: &str, add: bool) -> Result<()> {
        self.check(who, Op::ManageUsers)?;
        let role = parse_roles(&[role.to_string()])?
            .pop_first()
            .expect("one role parsed");
        let action = if add {
            "user role add"
        } else {
            "user role remove"
        };
        self.archive.write(|tx| {
            let mut u = tx
                .user(name)?
                .ok_or_else(|| Error::NotFound(format!("user '{name}'")))?;
            let had = u.roles.iter().any(|r| r == role.name());
            if had == add {
                let state = if add { "holds" } else { "does not hold" };
                return Err(Error::Conflict(format!(
                    "user '{name}' {state} role {role}"
                )));
            }
            u.roles.retain(|r| r != role.name());
            if add {
                u.roles.push(role.name().to_string());
                u.roles.sort();
            }
            tx.put_user(name, &u)?;
            let params = vec![p("user", name), p("role", role.name())];
            tx.audit(self.event(who, action, params, "ok"))?;
            Ok(())
        })?;
        self.forget_tokens();
        Ok(())
    }

    /// Removes a user, its tokens and its case memberships.
    pub fn user_remove(&self, who: &Principal, name: &str) -> Result<()> {
        self.check(who, Op::ManageUsers)?;
        self.archive.write(|tx| {
            if !tx.remove_user(name)? {
                return Err(Error::NotFound(format!("user '{name}'")));
            }
            tx.audit(self.event(who, "user remove", vec![p("user", name)], "ok"))?;
            Ok(())
        })?;
        self.forget_tokens();
        Ok(())
    }

    /// Adds (`add`) or removes a user's membership of a case.
    pub fn case_member(&self, who: &Principal, case: &str, user: &str, add: bool) -> Result<()> {
        self.check(who, Op::CaseMembers(case))?;
        let action = if add {
            "case member add"
        } else {
            "case member remove"
        };
        self.archive.write(|tx| {
            if tx.case(case)?.is_none() {
                return Err(Error::NotFound(format!("case '{case}'")));
            }
            if tx.user(user)?.is_none() {
                return Err(Error::NotFound(format!("user '{user}'")));
            }
            let present = tx.member(case, user)?.is_some();
            if present == add {
                let state = if add { "is" } else { "is not" };
                return Err(Error::Conflict(format!(
                    "user '{user}' {state} a member of case '{case}'"
                )));
            }
            if add {
                let rec = MemberRecord {
                    added: self.now(),
                    actor: who.actor(),
                };
                tx.put_member(case, user, &rec)?;
            } else {
                tx.remove_member(case, user)?;
            }
            let params = vec![p("case", case), p("user", user)];
            tx.audit(self.event(who, action, params, "ok"))?;
            Ok(())
        })?;
        self.forget_tokens();
        Ok(())
    }

    /// A new token acting as `user`; its secret is in the answer only.
    pub fn token_create(
        &self,
        who: &Principal,
        user: &str,
        expires_days: Option<u32>,
    ) -> Result<NewToken> {
        self.check(who, Op::ManageUsers)?;
        let now = self.now();
        let expires = expires_days
            .map(|d| {
                now.checked_add(i64::from(d) * crate::time::DAY)
                    .ok_or_else(|| Error::Usage(format!("{d} days: too far ahead")))
            })
            .transpose()?;
        let id = hex::encode(random::<8>()?);
        let secret = hex::encode(random::<32>()?);
        let hash = argon2::Argon2::default()
            .hash_password(secret.as_bytes())
            .map_err(|e| Error::Internal(format!("hashing the token: {e}")))?
            .to_string();
        let rec = TokenRecord {
            user: user.to_string(),
            hash,
            created: now,
            expires,
            actor: who.actor(),
        };
        let mut params = vec![p("user", user), p("token", &id)];
        params.extend(expires.map(|e| p("expires", &crate::time::iso(e))));
        self.archive.write(|tx| {
            if tx.user(user)?.is_none() {
                return Err(Error::NotFound(format!("user '{user}'")));
            }
            tx.put_token(&id, &rec)?;
            tx.audit(self.event(who, "token create", params, "ok"))?;
            Ok(())
        })?;
        Ok(NewToken {
            token: format!("{TOKEN_PREFIX}{id}_{secret}"),
            id,
            user: user.to_string(),
            expires,
        })
    }

    pub fn token_revoke(&self, who: &Principal, id: &str) -> Result<()> {
        self.check(who, Op::ManageUsers)?;
        self.archive.write(|tx| {
            let rec = tx
                .remove_token(id)?
                .ok_or_else(|| Error::NotFound(format!("token '{id}'")))?;
            let params = vec![p("token", id), p("user", &rec.user)];
            tx.audit(self.event(who, "token revoke", params, "ok"))?;
            Ok(())
        })?;
        self.forget_tokens();
        Ok(())
    }

    /// The principal a bearer token acts as. Every failure is the same
    /// `Unauthenticated` to the caller and one audit entry saying which.
    pub fn authenticate(&self, token: &str) -> Result<Principal> {
        if let Some(who) = self.token_verified(token) {
            return Ok(who);
        }
        let fail = |why: &str| Err(self.refuse_anonymous(why));
        let Some((id, secret)) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|t| t.split_once('_'))
        else {
            return fail("not a tgvault token");
        };
        let Some(rec) = self.archive.token(id)? else {
            return fail(&format!("no token {}", super::printable(id)));
        };
        if rec.expires.is_some_and(|e| e <= self.now()) {
            return fail(&format!("token {id} expired"));
        }
        let ok = PasswordHash::new(&rec.hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        });
        if !ok {
            return fail(&format!("wrong secret for token {id}"));
        }
        match self.principal_of_user(&rec.user)? {
            Some(p) => {
                self.remember_token(token, &p, rec.expires);
                Ok(p)
            }
            None => fail(&format!("token {id}: its user is gone")),
        }
    }

    /// The principal a stored user is, with the cases it is a member of.
    pub fn principal_of_user(&self, name: &str) -> Result<Option<Principal>> {
        let Some(u) = self.archive.user(name)? else {
            return Ok(None);
        };
        let roles = u.roles.iter().filter_map(|r| Role::parse(r)).collect();
        let cases = self
            .archive
            .members()?
            .into_iter()
            .filter(|(_, m, _)| m == name)
            .map(|(c, _, _)| c)
            .collect();
        Ok(Some(Principal {
            name: name.to_string(),
            kind: super::PrincipalKind::User,
            roles,
            cases,
        }))
    }

    /// The principal an OS account is through the server's socket: the
    /// user whose `--os-user` it is, if any.
    pub fn principal_of_os_user(&self, os_user: &str) -> Result<Option<Principal>> {
        match self.user_with_os(os_user)? {
            Some((name, _)) => self.principal_of_user(&name),
            None => Ok(None),
        }
    }
}
