//! The `connectors` table: each connector's settings and state, its position
//! in its source, and the business connections its source reported. What a
//! connector does with them is in `crate::connector`.

use super::key::{ConnectorRow, connector_key, decode_connector_key, prefix_end};
use super::records::{ConnectionRecord, ConnectorPosition, ConnectorRecord};
use super::tables::CONNECTORS;
use super::{Archive, Tx, codec};
use crate::error::Result;
use redb::ReadableTable;

impl Archive {
    /// Every row of one kind (under one name when `name` is given): the names
    /// in its key, and its value.
    fn connector_rows<T: serde::de::DeserializeOwned>(
        &self,
        kind: ConnectorRow,
        name: Option<&str>,
    ) -> Result<Vec<(Vec<String>, T)>> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(CONNECTORS) {
            Ok(t) => t,
            // An archive made before connectors has no such table.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let prefix = match name {
            Some(n) => connector_key(kind, n, None),
            None => vec![kind as u8],
        };
        let end = prefix_end(&prefix).unwrap_or_default();
        let mut out = Vec::new();
        for e in t.range(prefix.as_slice()..end.as_slice())? {
            let (k, v) = e?;
            let (_, names) = decode_connector_key(k.value())?;
            out.push((names, codec::decode(v.value())?));
        }
        Ok(out)
    }

    /// Every connector, by name.
    pub fn connectors(&self) -> Result<Vec<(String, ConnectorRecord)>> {
        let rows = self.connector_rows(ConnectorRow::Config, None)?;
        Ok(rows
            .into_iter()
            .map(|(mut n, c)| (n.remove(0), c))
            .collect())
    }

    /// One row by its key.
    fn connector_row<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(CONNECTORS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        t.get(key)?.map(|v| codec::decode(v.value())).transpose()
    }

    pub fn connector(&self, name: &str) -> Result<Option<ConnectorRecord>> {
        self.connector_row(&connector_key(ConnectorRow::Config, name, None))
    }

    pub fn connector_position(&self, name: &str) -> Result<ConnectorPosition> {
        let key = connector_key(ConnectorRow::Position, name, None);
        Ok(self.connector_row(&key)?.unwrap_or_default())
    }

    /// The business connections a connector's source reported, by id.
    pub fn connections(&self, name: &str) -> Result<Vec<(String, ConnectionRecord)>> {
        let rows = self.connector_rows(ConnectorRow::Connection, Some(name))?;
        Ok(rows
            .into_iter()
            .filter_map(|(mut n, c)| Some((n.pop()?, c)))
            .collect())
    }
}

impl Tx<'_> {
    pub fn connector(&self, name: &str) -> Result<Option<ConnectorRecord>> {
        let key = connector_key(ConnectorRow::Config, name, None);
        self.connectors
            .get(key.as_slice())?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    pub fn put_connector(&mut self, name: &str, rec: &ConnectorRecord) -> Result<()> {
        let key = connector_key(ConnectorRow::Config, name, None);
        self.connectors
            .insert(key.as_slice(), codec::encode(rec).as_slice())?;
        Ok(())
    }

    /// Removes a connector's settings and position (what it captured, its
    /// runs and the connections it saw stay); whether there was one.
    pub fn remove_connector(&mut self, name: &str) -> Result<bool> {
        let key = connector_key(ConnectorRow::Config, name, None);
        let had = self.connectors.remove(key.as_slice())?.is_some();
        let key = connector_key(ConnectorRow::Position, name, None);
        self.connectors.remove(key.as_slice())?;
        Ok(had)
    }

    pub fn connector_position(&self, name: &str) -> Result<ConnectorPosition> {
        let key = connector_key(ConnectorRow::Position, name, None);
        Ok(self
            .connectors
            .get(key.as_slice())?
            .map(|v| codec::decode(v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn put_connector_position(&mut self, name: &str, pos: &ConnectorPosition) -> Result<()> {
        let key = connector_key(ConnectorRow::Position, name, None);
        self.connectors
            .insert(key.as_slice(), codec::encode(pos).as_slice())?;
        Ok(())
    }

    pub fn put_connection(&mut self, name: &str, id: &str, rec: &ConnectionRecord) -> Result<()> {
        let key = connector_key(ConnectorRow::Connection, name, Some(id));
        self.connectors
            .insert(key.as_slice(), codec::encode(rec).as_slice())?;
        Ok(())
    }
}
