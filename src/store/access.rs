//! The `access` table: users, API tokens and case memberships, as stored
//! rows. What they permit is decided in `service::access`; the hashing of
//! token secrets in `service::users`.

use super::key::{AccessKind, access_key, decode_access_key, member_key, prefix_end};
use super::records::{MemberRecord, TokenRecord, UserRecord};
use super::tables::ACCESS;
use super::{Archive, Tx, codec};
use crate::error::Result;
use redb::ReadableTable;

impl Archive {
    /// Every row of one kind: the names in its key, and its value.
    fn access_rows<T: serde::de::DeserializeOwned>(
        &self,
        prefix: Vec<u8>,
    ) -> Result<Vec<(Vec<String>, T)>> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(ACCESS) {
            Ok(t) => t,
            // An archive made before access control has no such table.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let end = prefix_end(&prefix).unwrap_or_default();
        let mut out = Vec::new();
        for e in t.range(prefix.as_slice()..end.as_slice())? {
            let (k, v) = e?;
            let (_, names) = decode_access_key(k.value())?;
            out.push((names, codec::decode(v.value())?));
        }
        Ok(out)
    }

    fn access_row<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(ACCESS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        t.get(key)?.map(|v| codec::decode(v.value())).transpose()
    }

    pub fn users(&self) -> Result<Vec<(String, UserRecord)>> {
        let rows = self.access_rows(vec![AccessKind::User as u8])?;
        Ok(rows
            .into_iter()
            .map(|(mut n, u)| (n.remove(0), u))
            .collect())
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        self.access_row(&access_key(AccessKind::User, name))
    }

    pub fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        self.access_row(&access_key(AccessKind::Token, id))
    }

    pub fn tokens(&self) -> Result<Vec<(String, TokenRecord)>> {
        let rows = self.access_rows(vec![AccessKind::Token as u8])?;
        Ok(rows
            .into_iter()
            .map(|(mut n, t)| (n.remove(0), t))
            .collect())
    }

    /// Every `(case, user)` membership.
    pub fn members(&self) -> Result<Vec<(String, String, MemberRecord)>> {
        let rows = self.access_rows::<MemberRecord>(vec![AccessKind::Member as u8])?;
        Ok(rows
            .into_iter()
            .filter_map(|(mut n, m)| {
                let user = n.pop()?;
                let case = n.pop()?;
                Some((case, user, m))
            })
            .collect())
    }
}

impl Tx<'_> {
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let key = access_key(AccessKind::User, name);
        self.access
            .get(key.as_slice())?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    pub fn put_user(&mut self, name: &str, rec: &UserRecord) -> Result<()> {
        let key = access_key(AccessKind::User, name);
        self.access
            .insert(key.as_slice(), codec::encode(rec).as_slice())?;
        Ok(())
    }

    /// Removes a user with its tokens and memberships; whether there was one.
    pub fn remove_user(&mut self, name: &str) -> Result<bool> {
        let key = access_key(AccessKind::User, name);
        if self.access.remove(key.as_slice())?.is_none() {
            return Ok(false);
        }
        let mut gone = Vec::new();
        for e in self.access.iter()? {
            let (k, v) = e?;
            let (kind, names) = decode_access_key(k.value())?;
            let theirs = match kind {
                AccessKind::Token => codec::decode::<TokenRecord>(v.value())?.user == name,
                AccessKind::Member => names.get(1).map(String::as_str) == Some(name),
                AccessKind::User => false,
            };
            if theirs {
                gone.push(k.value().to_vec());
            }
        }
        for k in gone {
            self.access.remove(k.as_slice())?;
        }
        Ok(true)
    }

    pub fn put_token(&mut self, id: &str, rec: &TokenRecord) -> Result<()> {
        let key = access_key(AccessKind::Token, id);
        self.access
            .insert(key.as_slice(), codec::encode(rec).as_slice())?;
        Ok(())
    }

    pub fn remove_token(&mut self, id: &str) -> Result<Option<TokenRecord>> {
        let key = access_key(AccessKind::Token, id);
        let old = self.access.remove(key.as_slice())?;
        old.map(|v| codec::decode(v.value())).transpose()
    }

    pub fn member(&self, case: &str, user: &str) -> Result<Option<MemberRecord>> {
        let key = member_key(case, user);
        self.access
            .get(key.as_slice())?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    pub fn put_member(&mut self, case: &str, user: &str, rec: &MemberRecord) -> Result<()> {
        let key = member_key(case, user);
        self.access
            .insert(key.as_slice(), codec::encode(rec).as_slice())?;
        Ok(())
    }

    pub fn remove_member(&mut self, case: &str, user: &str) -> Result<bool> {
        let key = member_key(case, user);
        Ok(self.access.remove(key.as_slice())?.is_some())
    }
}
