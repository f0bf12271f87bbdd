//! Clock: UTC calendar time from the system clock without a date crate, for backup directory names
//! and the shadow "last change" day.

use std::time::{SystemTime, UNIX_EPOCH};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Days since 1970-01-01 (UTC).
pub fn today() -> u64 {
    now_secs() / 86_400
}

/// `YYYYMMDDTHHMMSSZ` for now.
pub fn stamp() -> String {
    stamp_at(now_secs())
}

pub fn stamp_at(secs: u64) -> String {
    let (y, m, d) = civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm, for days on or after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(m <= 2), m, d)
}

/// Days from 1970-01-01 to the civil date `y-m-d` (proleptic Gregorian, `m` 1–12): the inverse of
/// `civil_from_days`, for calendar times a filesystem stores without a zone (FAT's).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps() {
        assert_eq!(super::stamp_at(0), "19700101T000000Z");
        assert_eq!(super::stamp_at(951_782_400), "20000229T000000Z");
        assert_eq!(super::stamp_at(1_795_000_000), "20261118T110640Z");
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in [0u64, 59, 60, 365, 10_957, 11_016, 20_000, 47_481] {
            let (y, m, d) = super::civil_from_days(days);
            let back = super::days_from_civil(y as i64, m as u32, d as u32);
            assert_eq!(back, days as i64, "{y}-{m}-{d}");
        }
        assert_eq!(super::days_from_civil(1980, 1, 1), 3652);
    }
}
