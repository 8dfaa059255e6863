//! Epoch timestamps as the reference CLI prints them (`%m/%d %H:%M[:%S]`, local time).

use chrono::{DateTime, FixedOffset, Local, TimeZone, Utc};

/// The time zone timestamps are shown in. Commands use `Local` (which honours `TZ`); tests
/// pass a fixed zone so they never depend on the machine's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Local,
    Utc,
    Fixed(FixedOffset),
}

impl Zone {
    fn format(self, epoch: i64, pattern: &str) -> Option<String> {
        match self {
            Zone::Local => Local
                .timestamp_opt(epoch, 0)
                .single()
                .map(|t| t.format(pattern).to_string()),
            Zone::Utc => {
                DateTime::<Utc>::from_timestamp(epoch, 0).map(|t| t.format(pattern).to_string())
            }
            Zone::Fixed(offset) => offset
                .timestamp_opt(epoch, 0)
                .single()
                .map(|t| t.format(pattern).to_string()),
        }
    }
}

/// The reference's `time_to_str`: `-` for 0 (or text that is not a number), else the time with
/// or without seconds.
pub fn time_to_str(value: &str, seconds: bool, zone: Zone) -> String {
    let epoch = ruby_to_i(value);
    if epoch == 0 {
        return "-".to_string();
    }
    let pattern = if seconds {
        "%m/%d %H:%M:%S"
    } else {
        "%m/%d %H:%M"
    };
    zone.format(epoch, pattern)
        .unwrap_or_else(|| "-".to_string())
}

/// Ruby's `String#to_i`: the leading (optionally signed) decimal digits, 0 when there are none.
pub fn ruby_to_i(value: &str) -> i64 {
    let s = value.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if negative { -n } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_reference() {
        assert_eq!(time_to_str("1569251438", false, Zone::Utc), "09/23 15:10");
        assert_eq!(time_to_str("1569251438", true, Zone::Utc), "09/23 15:10:38");
        let cest = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            time_to_str("1569251438", false, Zone::Fixed(cest)),
            "09/23 17:10"
        );
        assert_eq!(time_to_str("0", true, Zone::Utc), "-");
        assert_eq!(time_to_str("", true, Zone::Utc), "-");
        assert_eq!(time_to_str("abc", true, Zone::Utc), "-");
    }

    #[test]
    fn ruby_to_i_takes_leading_digits() {
        assert_eq!(ruby_to_i(" 42abc"), 42);
        assert_eq!(ruby_to_i("-7"), -7);
        assert_eq!(ruby_to_i("x1"), 0);
        assert_eq!(ruby_to_i("99999999999999999999999"), i64::MAX);
    }
}
