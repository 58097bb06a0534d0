//! The values a request carries, read the same way whatever the interface:
//! mailbox addresses, days and times.

use crate::error::{Error, Result};

/// A mailbox address, normalised as the mapping normalises it.
pub fn mailbox_arg(m: &str) -> Result<String> {
    crate::mapping::normalize_mailbox(m)
        .ok_or_else(|| Error::Usage(format!("'{m}' is not a mailbox address")))
}

/// `YYYY-MM-DD`: the first second of that day, UTC.
pub fn parse_day(d: &str) -> Result<i64> {
    d.parse::<jiff::civil::Date>()
        .map(|d| crate::time::day_start(i64::from(d.year()), d.month() as u8, d.day() as u8))
        .map_err(|_| Error::Usage(format!("'{d}' is not a date (YYYY-MM-DD)")))
}

/// `YYYY-MM-DD` (the start of that day, or with `end` the start of the next)
/// or an RFC 3339 time, UTC.
pub fn parse_time(s: &str, end: bool) -> Result<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    // jiff's timestamps end on 9999-12-30; a UTC time after that is still
    // a time of the calendar.
    if let Some(utc) = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))
        && let Ok(dt) = utc.parse::<jiff::civil::DateTime>()
    {
        let day = crate::time::day_start(i64::from(dt.year()), dt.month() as u8, dt.day() as u8);
        let secs =
            i64::from(dt.hour()) * 3600 + i64::from(dt.minute()) * 60 + i64::from(dt.second());
        return Ok(day + secs);
    }
    let d: jiff::civil::Date = s.parse().map_err(|_| {
        Error::Usage(format!(
            "'{s}' is not a date (YYYY-MM-DD) or an RFC 3339 time"
        ))
    })?;
    let start = crate::time::day_start(i64::from(d.year()), d.month() as u8, d.day() as u8);
    if !end {
        return Ok(start);
    }
    start
        .checked_add(crate::time::DAY)
        .ok_or_else(|| Error::Usage(format!("'{s}': the day after it cannot be counted")))
}
