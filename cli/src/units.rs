//! Sizes and durations as the reference CLI prints them (`2M`, `1.9G`, `  0d 00h01m`).

const SUFFIXES: [&str; 4] = ["K", "M", "G", "T"];

/// `unit_to_str`: `value` in `unit` (K, M, G or T), scaled by 1024 while above 1024, one
/// decimal kept unless it is zero.
pub fn unit_to_str(value: i64, unit: &str) -> String {
    let mut i = SUFFIXES.iter().position(|s| *s == unit).unwrap_or(0);
    let mut v = value as f64;
    while v > 1024.0 && i < 3 {
        v /= 1024.0;
        i += 1;
    }
    let v = (v * 10.0).round() / 10.0;
    if v.fract() == 0.0 {
        format!("{}{}", v as i64, SUFFIXES[i])
    } else {
        format!("{v}{}", SUFFIXES[i])
    }
}

/// `period_to_str`: `%3dd %02dh%02dm[%02ds]`.
pub fn period_to_str(seconds: i64, with_seconds: bool) -> String {
    let seconds = seconds.max(0);
    let (minutes, s) = (seconds / 60, seconds % 60);
    let (hours, m) = (minutes / 60, minutes % 60);
    let (days, h) = (hours / 24, hours % 24);
    if with_seconds {
        format!("{days:>3}d {h:02}h{m:02}m{s:02}s")
    } else {
        format!("{days:>3}d {h:02}h{m:02}m")
    }
}

/// `short_period_to_str`: `%3dh%02dm%02ds`.
pub fn short_period_to_str(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (minutes, s) = (seconds / 60, seconds % 60);
    let (hours, m) = (minutes / 60, minutes % 60);
    format!("{hours:>3}h{m:02}m{s:02}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(unit_to_str(2, "M"), "2M");
        assert_eq!(unit_to_str(2048, "M"), "2G");
        assert_eq!(unit_to_str(1992294, "K"), "1.9G");
        assert_eq!(unit_to_str(0, "K"), "0K");
        assert_eq!(unit_to_str(1024, "K"), "1024K");
    }

    #[test]
    fn periods() {
        assert_eq!(period_to_str(61, false), "  0d 00h01m");
        assert_eq!(period_to_str(90061, true), "  1d 01h01m01s");
        assert_eq!(short_period_to_str(3725), "  1h02m05s");
        assert_eq!(period_to_str(-5, false), "  0d 00h00m");
    }
}
