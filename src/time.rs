//! UTC times as text, for every `i64` second: what reports, `explain` and
//! exports print. Pure.
//!
//! jiff parses and converts zones, but its timestamps end at 9999-12-30
//! 22:00 UTC (room for offsets), and an item's date may be any `i64` an
//! export holds. The civil calendar is computed here instead, for the
//! whole range: no date is ever shown as a raw number, or as another date.

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// A UTC time split into its civil parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 0 = Monday.
    pub weekday: u8,
}

/// The civil date and time of `t` seconds after 1970-01-01T00:00:00Z
/// (proleptic Gregorian calendar).
pub fn civil(t: i64) -> Civil {
    let days = t.div_euclid(DAY);
    let secs = t.rem_euclid(DAY);
    // Days counted from 0000-03-01, in 400-year eras of 146,097 days.
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i128::from(month <= 2);
    Civil {
        // |days| < 2^47, so the year is far inside i64.
        year: year as i64,
        month,
        day,
        hour: (secs / 3600) as u8,
        minute: (secs / 60 % 60) as u8,
        second: (secs % 60) as u8,
        weekday: (days + 3).rem_euclid(7) as u8,
    }
}

/// The first second of a civil day (`month` 1-12, `day` 1-31, not checked
/// against the month's length: the caller parsed a valid date).
pub fn day_start(year: i64, month: u8, day: u8) -> i64 {
    let y = i128::from(year) - i128::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i128::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i128::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // Years of a parsed date are at most 5 digits: far inside i64.
    ((era * 146_097 + doe - 719_468) * i128::from(DAY)) as i64
}

/// The year as ISO 8601 writes it: four digits, a sign beyond 0000..9999.
fn year(y: i64) -> String {
    match y {
        0..=9999 => format!("{y:04}"),
        y if y < 0 => format!("-{:04}", y.unsigned_abs()),
        y => format!("+{y}"),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(t: i64) -> String {
    let c = civil(t);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        year(c.year),
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second
    )
}

/// `YYYY-MM-DD`.
pub fn day(t: i64) -> String {
    let c = civil(t);
    format!("{}-{:02}-{:02}", year(c.year), c.month, c.day)
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 5322's date-time in UTC: `Thu, 01 Jul 2021 12:00:00 +0000` (a year
/// before 1900 or past 9999 is written whole, as the grammar's `4*DIGIT`
/// allows; a negative one cannot be written and is clamped to 0000).
pub fn rfc5322(t: i64) -> String {
    let c = civil(t);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[usize::from(c.weekday)],
        c.day,
        MONTHS[usize::from(c.month - 1)],
        c.year.max(0),
        c.hour,
        c.minute,
        c.second
    )
}

/// The mbox `From ` line's date: `Thu Jul  1 12:00:00 2021` (asctime).
pub fn asctime(t: i64) -> String {
    let c = civil(t);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {:04}",
        WEEKDAYS[usize::from(c.weekday)],
        MONTHS[usize::from(c.month - 1)],
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.year
    )
}

/// The end of a period of `days` counted from `from`, or `None` when it
/// lies past the last second an `i64` can count.
pub fn after_days(from: i64, days: u32) -> Option<i64> {
    from.checked_add(i64::from(days) * DAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_times() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_625_140_800), "2021-07-01T12:00:00Z");
        assert_eq!(iso(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(iso(253_402_300_800), "+10000-01-01T00:00:00Z");
        assert_eq!(iso(-62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(iso(-62_167_219_201), "-0001-12-31T23:59:59Z");
        assert_eq!(rfc5322(1_625_140_800), "Thu, 01 Jul 2021 12:00:00 +0000");
        assert_eq!(asctime(1_625_140_800), "Thu Jul  1 12:00:00 2021");
        assert_eq!(day(951_782_400), "2000-02-29");
        assert_eq!(day_start(2000, 2, 29), 951_782_400);
        assert_eq!(day_start(9999, 12, 31), 253_402_214_400);
        assert_eq!(day_start(1969, 12, 31), -DAY);
        // The extremes print, and as the years they are.
        assert_eq!(iso(i64::MAX), "+292277026596-12-04T15:30:07Z");
        assert_eq!(iso(i64::MIN), "-292277022657-01-27T08:29:52Z");
        assert_eq!(after_days(i64::MAX - 10, 1), None);
        assert_eq!(after_days(0, u32::MAX), Some(i64::from(u32::MAX) * DAY));
    }

    proptest! {
        /// Agrees with jiff wherever jiff can represent the time.
        #[test]
        fn agrees_with_jiff(t in -377_705_116_800i64..=253_402_207_200) {
            let ts = jiff::Timestamp::from_second(t).unwrap();
            // jiff writes years before 0000 with three digits; ISO 8601
            // (and this module) with four.
            if t >= -62_167_219_200 {
                prop_assert_eq!(iso(t), ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                prop_assert_eq!(
                    rfc5322(t),
                    ts.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
                );
                prop_assert_eq!(asctime(t), ts.strftime("%a %b %e %H:%M:%S %Y").to_string());
            }
        }

        #[test]
        fn day_start_inverts_civil(t in -10_000_000_000_000i64..10_000_000_000_000) {
            let c = civil(t);
            prop_assert_eq!(day_start(c.year, c.month, c.day), t - t.rem_euclid(DAY));
        }

        #[test]
        fn every_second_prints(t in any::<i64>()) {
            let c = civil(t);
            prop_assert!((1..=12).contains(&c.month) && (1..=31).contains(&c.day));
            prop_assert!(!iso(t).is_empty() && !rfc5322(t).is_empty());
        }
    }
}
