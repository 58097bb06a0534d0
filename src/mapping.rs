//! The user map: which mailbox an item's participant belongs to. Pure: takes a
//! reader, returns values.
//!
//! The CSV is Purview's format, `mobile_number,mailbox`, with a header, plus two
//! optional columns this archive also understands: `telegram_user_id` and
//! `telegram_username`. A participant resolves through the CSV first (phone,
//! then user id, then username); the export's custodian then falls back to the
//! e-mail address named for the export (`--mailbox`). A participant that resolves
//! nowhere gives no mailbox; an item none of whose participants resolve is
//! quarantined by the importer, never dropped.

use crate::error::{Error, Result};
use crate::model::Person;
use crate::store::records::Custodian;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct Mapping {
    by_phone: HashMap<String, Row>,
    by_user_id: HashMap<i64, Row>,
    by_username: HashMap<String, Row>,
    /// Every mailbox the CSV names.
    mailboxes: std::collections::HashSet<String>,
    /// The organisation's e-mail domains (`--org-domain`): an item's e-mail
    /// address in one of them is a mailbox.
    org_domains: Vec<String>,
}

#[derive(Clone, Debug)]
struct Row {
    mailbox: String,
    line: u64,
}

/// Which rule resolved a participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Phone,
    TelegramUserId,
    TelegramUsername,
    EmailAddress,
}

/// Normalises a phone number to its digits: drops spaces, dashes, dots and
/// brackets, and a leading `+` or `00`. `None` when anything else remains.
pub fn normalize_phone(raw: &str) -> Option<String> {
    // One string: the kept characters, then the prefix cut off in place.
    let mut kept = String::with_capacity(raw.len());
    kept.extend(
        raw.chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '\t' | '\u{a0}')),
    );
    let prefix = if kept.starts_with('+') {
        1
    } else if kept.starts_with("00") {
        2
    } else {
        0
    };
    let digits = &kept[prefix..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    kept.drain(..prefix);
    Some(kept)
}

/// Lower-cases and checks an e-mail address; `None` when it is not one.
pub fn normalize_mailbox(raw: &str) -> Option<String> {
    let m = raw.trim().to_lowercase();
    let (local, domain) = m.split_once('@')?;
    // RFC 5321's dot-atom, with UTF-8 letters allowed (RFC 6531): no empty
    // part between dots, none at either end, and the limits on length.
    let dot_atom = |s: &str, ok: &dyn Fn(char) -> bool| {
        !s.is_empty()
            && s.split('.')
                .all(|part| !part.is_empty() && part.chars().all(ok))
    };
    let local_ok = local.len() <= 64
        && dot_atom(local, &|c| {
            c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
        });
    let domain_ok = domain.contains('.')
        && dot_atom(domain, &|c| c.is_alphanumeric() || c == '-')
        && domain
            .split('.')
            .all(|l| l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'));
    (local_ok && domain_ok && m.len() <= 254).then_some(m)
}

/// A Telegram user id as people write it: `123` or `user123`.
pub fn parse_user_id(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    raw.strip_prefix("user")
        .unwrap_or(raw)
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
}

fn normalize_username(raw: &str) -> String {
    raw.trim().trim_start_matches('@').to_lowercase()
}

/// The line (from 1) of the first character at or after byte `at` that
/// does not end a line: a record's own line, past the blank lines the csv
/// reader skips. A line ends at LF, CR LF or a lone CR (the csv crate's own
/// count falls short with CR LF).
fn line_at(bytes: &[u8], at: u64) -> u64 {
    let mut at = (at as usize).min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
        at += 1;
    }
    let before = &bytes[..at];
    let breaks = memchr::memchr2_iter(b'\r', b'\n', before)
        .filter(|&i| !(before[i] == b'\n' && i > 0 && before[i - 1] == b'\r'))
        .count();
    1 + breaks as u64
}

impl Mapping {
    pub fn from_path(path: &Path) -> Result<Mapping> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Mapping::from_reader(f, path)
    }

    /// Reads the CSV; `path` names it in errors, which also give the line.
    pub fn from_reader(r: impl Read, path: &Path) -> Result<Mapping> {
        let line_err = |line: u64, message: String| Error::InputLine {
            path: path.to_path_buf(),
            line,
            message,
        };
        // A user map is small: read whole, so that lines can be counted.
        let mut bytes = Vec::new();
        let mut r = r;
        r.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
        let line_of = |p: Option<&csv::Position>| p.map_or(0, |p| line_at(&bytes, p.byte()));
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(bytes.as_slice());
        let headers = rdr
            .headers()
            .map_err(|e| line_err(1, format!("unreadable header: {e}")))?
            .clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
        };
        let (Some(phone_col), Some(mailbox_col)) = (col("mobile_number"), col("mailbox")) else {
            return Err(line_err(
                1,
                "the header must name the columns mobile_number and mailbox".into(),
            ));
        };
        let id_col = col("telegram_user_id");
        let user_col = col("telegram_username");
        let mut m = Mapping::default();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| {
                line_err(line_of(e.position()), format!("malformed CSV record: {e}"))
            })?;
            let line = line_of(rec.position());
            let field = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").trim();
            let raw_mailbox = field(Some(mailbox_col));
            let mailbox = normalize_mailbox(raw_mailbox).ok_or_else(|| {
                line_err(line, format!("'{raw_mailbox}' is not a mailbox address"))
            })?;
            m.mailboxes.insert(mailbox.clone());
            let row = Row { mailbox, line };
            let mut keys = 0;
            let raw_phone = field(Some(phone_col));
            if !raw_phone.is_empty() {
                let phone = normalize_phone(raw_phone).ok_or_else(|| {
                    line_err(line, format!("'{raw_phone}' is not a phone number"))
                })?;
                insert(&mut m.by_phone, phone, row.clone(), path)?;
                keys += 1;
            }
            let raw_id = field(id_col);
            if !raw_id.is_empty() {
                let id = parse_user_id(raw_id).ok_or_else(|| {
                    line_err(line, format!("'{raw_id}' is not a Telegram user id"))
                })?;
                insert(&mut m.by_user_id, id, row.clone(), path)?;
                keys += 1;
            }
            let raw_user = field(user_col);
            if !raw_user.is_empty() {
                insert(
                    &mut m.by_username,
                    normalize_username(raw_user),
                    row.clone(),
                    path,
                )?;
                keys += 1;
            }
            if keys == 0 {
                return Err(line_err(
                    line,
                    "the row names no mobile_number, telegram_user_id or telegram_username".into(),
                ));
            }
        }
        Ok(m)
    }

    /// The same map, with the organisation's e-mail domains.
    pub fn with_org_domains(mut self, domains: &[String]) -> Result<Mapping> {
        for d in domains {
            let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
            let ok = !d.is_empty()
                && d.contains('.')
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
            if !ok {
                return Err(Error::Usage(format!(
                    "org-domain: '{d}' is not a domain name"
                )));
            }
            self.org_domains.push(d);
        }
        Ok(self)
    }

    /// The organisation's mailbox an e-mail address names: one the CSV
    /// names, or one in an organisation domain. Outsiders have none.
    fn org_mailbox(&self, email: &str) -> Option<String> {
        let m = normalize_mailbox(email)?;
        let domain = m.rsplit_once('@')?.1;
        (self.mailboxes.contains(&m) || self.org_domains.iter().any(|d| d == domain)).then_some(m)
    }

    pub fn is_empty(&self) -> bool {
        self.by_phone.is_empty() && self.by_user_id.is_empty() && self.by_username.is_empty()
    }

    /// Resolves one person through the CSV alone.
    pub fn lookup(&self, p: &Person) -> Option<(String, Rule)> {
        if let Some(r) = p
            .phone
            .as_deref()
            .and_then(normalize_phone)
            .and_then(|ph| self.by_phone.get(&ph))
        {
            return Some((r.mailbox.clone(), Rule::Phone));
        }
        if let Some(r) = p
            .peer
            .and_then(|peer| peer.user_id())
            .and_then(|id| self.by_user_id.get(&id))
        {
            return Some((r.mailbox.clone(), Rule::TelegramUserId));
        }
        if let Some(r) = p
            .username
            .as_deref()
            .and_then(|u| self.by_username.get(&normalize_username(u)))
        {
            return Some((r.mailbox.clone(), Rule::TelegramUsername));
        }
        // Then the item's e-mail address (a delivered e-mail's participants).
        let email = p.raw_id.as_deref()?.strip_prefix("mailto:")?;
        self.org_mailbox(email).map(|m| (m, Rule::EmailAddress))
    }

    /// The mailboxes an item goes to: every participant that resolves, sorted
    /// and without repeats. The custodian resolves through the CSV first, then
    /// through the export's e-mail address; when the export does not say who
    /// its owner is, the custodian's address still receives every item.
    pub fn fan_out(&self, participants: &[Person], custodian: &Custodian) -> Vec<String> {
        self.resolve(participants, custodian).mailboxes
    }

    /// Fan-out and the per-participant addresses in one pass over the
    /// participants (each is looked up in the CSV once).
    pub fn resolve(&self, participants: &[Person], custodian: &Custodian) -> Resolved {
        let owner_via_csv = custodian
            .owner
            .as_ref()
            .and_then(|o| self.lookup(o))
            .map(|(m, _)| m);
        let owner_mailbox = owner_via_csv.clone().or_else(|| custodian.address.clone());
        let mut out = Resolved::default();
        for p in participants {
            let via_csv = self.lookup(p).map(|(m, _)| m);
            if let Some(m) = &via_csv {
                out.mailboxes.push(m.clone());
            }
            // The owner as a participant may lack the phone the export's
            // personal information gives: they resolve as the custodian does.
            let found = via_csv.or_else(|| {
                custodian
                    .owner
                    .as_ref()
                    .filter(|o| o.same_as(p))
                    .and(owner_mailbox.clone())
            });
            if let Some(m) = found {
                let k = p.key();
                if !k.is_empty() && !out.addresses.iter().any(|(kk, _)| *kk == k) {
                    out.addresses.push((k, m));
                }
            }
        }
        out.mailboxes.extend(owner_mailbox);
        out.mailboxes.sort();
        out.mailboxes.dedup();
        out
    }
}

/// Where an item goes and who resolved to which mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Sorted, without repeats; empty: quarantine.
    pub mailboxes: Vec<String>,
    /// `(Person::key, mailbox)` for each participant that resolved.
    pub addresses: Vec<(String, String)>,
}

fn insert<K: std::hash::Hash + Eq + std::fmt::Display + Clone>(
    map: &mut HashMap<K, Row>,
    key: K,
    row: Row,
    path: &Path,
) -> Result<()> {
    if let Some(prev) = map.get(&key) {
        if prev.mailbox != row.mailbox {
            return Err(Error::InputLine {
                path: path.to_path_buf(),
                line: row.line,
                message: format!(
                    "'{key}' maps to {} here but to {} on line {}",
                    row.mailbox, prev.mailbox, prev.line
                ),
            });
        }
        return Ok(());
    }
    map.insert(key, row);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Peer;

    fn parse(csv: &str) -> Result<Mapping> {
        Mapping::from_reader(csv.as_bytes(), Path::new("users.csv"))
    }

    #[test]
    fn mailboxes_are_dot_atoms() {
        for ok in [
            "a@x.example",
            "a.b@x.example",
            "a'b@x.example",
            "a/b@x.example",
            "a_b@x.example",
            "иван@пример.рф",
            "Mixed@Case.Example",
        ] {
            assert!(normalize_mailbox(ok).is_some(), "{ok}");
        }
        for bad in [
            "..@x.example",
            ".hidden@x.example",
            "a.@x.example",
            "a..b@x.example",
            "a@.x.example",
            "a@x..example",
            "a@x.example.",
            "a@-x.example",
            "a@x",
            "@x.example",
            "a@",
            "a b@x.example",
            "a\0b@x.example",
            "a@b@x.example",
            "a\u{202e}@x.example",
        ] {
            assert!(normalize_mailbox(bad).is_none(), "{bad:?}");
        }
        assert!(normalize_mailbox(&format!("{}@x.example", "a".repeat(65))).is_none());
    }

    #[test]
    fn errors_name_the_line_with_any_line_end() {
        for end in ["\n", "\r\n", "\r"] {
            let csv = [
                "mobile_number,mailbox",
                "+15550001,a@x.example",
                "",
                "+15550002,bad",
                "",
            ]
            .join(end);
            let e = Mapping::from_reader(csv.as_bytes(), Path::new("m.csv"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("m.csv:4:"), "{end:?}: {e}");
        }
    }

    #[test]
    fn phones_normalise() {
        assert_eq!(
            normalize_phone("+1 (555) 010-0001").as_deref(),
            Some("15550100001")
        );
        assert_eq!(
            normalize_phone("0044 20 7946 0000").as_deref(),
            Some("442079460000")
        );
        assert_eq!(
            normalize_phone("15550100001").as_deref(),
            Some("15550100001")
        );
        assert_eq!(normalize_phone("555-CALL"), None);
        assert_eq!(normalize_phone("+"), None);
        assert_eq!(normalize_phone("00"), None);
        assert_eq!(normalize_phone("+00 1").as_deref(), Some("001"));
    }

    proptest::proptest! {
        /// The rule in two steps, as documented: drop the separators, then
        /// one `+` or `00` prefix; what is left must be digits.
        #[test]
        fn phones_normalise_as_the_two_step_rule(raw in "[0-9 +().\\-a\u{a0}]{0,12}") {
            let kept: String = raw
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '\t' | '\u{a0}'))
                .collect();
            let digits = kept
                .strip_prefix('+')
                .or_else(|| kept.strip_prefix("00"))
                .unwrap_or(&kept);
            let want = (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
                .then(|| digits.to_string());
            proptest::prop_assert_eq!(normalize_phone(&raw), want);
        }
    }

    #[test]
    fn precedence_is_phone_then_id_then_username() {
        let m = parse(
            "mobile_number,mailbox,telegram_user_id,telegram_username\n\
             +1 555 0100,phone@corp.example,,\n\
             ,id@corp.example,42,\n\
             ,name@corp.example,,@Alice\n",
        )
        .unwrap();
        let p = Person {
            peer: Some(Peer::User(42)),
            username: Some("alice".into()),
            phone: Some("15550100".into()),
            ..Default::default()
        };
        assert_eq!(
            m.lookup(&p),
            Some(("phone@corp.example".into(), Rule::Phone))
        );
        let p2 = Person {
            phone: None,
            ..p.clone()
        };
        assert_eq!(
            m.lookup(&p2),
            Some(("id@corp.example".into(), Rule::TelegramUserId))
        );
        let p3 = Person { peer: None, ..p2 };
        assert_eq!(
            m.lookup(&p3),
            Some(("name@corp.example".into(), Rule::TelegramUsername))
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse("mobile_number,mailbox\n+15550100,a@corp.example\n12ab,b@corp.example\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("users.csv:3:"), "{e}");
        let e = parse("mobile_number,mailbox\n1,not-an-address\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:") && e.contains("not-an-address"), "{e}");
        let e = parse("phone,mailbox\n").unwrap_err().to_string();
        assert!(e.contains("mobile_number"), "{e}");
        let e = parse("mobile_number,mailbox\n1,a@x.example\n1,b@x.example\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3:") && e.contains("line 2"), "{e}");
        let e = parse("mobile_number,mailbox\n1,a@x.example,extra\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:"), "{e}");
    }

    #[test]
    fn custodian_falls_back_to_the_export_address() {
        let m = parse("mobile_number,mailbox,telegram_user_id\n,bob@corp.example,7\n").unwrap();
        let bob = Person {
            peer: Some(Peer::User(7)),
            ..Default::default()
        };
        let eve = Person {
            peer: Some(Peer::User(8)),
            ..Default::default()
        };
        let custodian = Custodian {
            owner: Some(eve.clone()),
            address: Some("eve@corp.example".into()),
        };
        assert_eq!(
            m.fan_out(&[bob.clone(), eve.clone()], &custodian),
            vec!["bob@corp.example", "eve@corp.example"]
        );
        // The CSV wins over the address for the custodian.
        let m2 = parse("mobile_number,mailbox,telegram_user_id\n,eve2@corp.example,8\n").unwrap();
        assert_eq!(m2.fan_out(&[eve], &custodian), vec!["eve2@corp.example"]);
        // Nobody resolves: no mailbox, the importer quarantines.
        assert!(
            Mapping::default()
                .fan_out(&[bob], &Custodian::default())
                .is_empty()
        );
    }
}
