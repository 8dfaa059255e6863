//! Lenient date parsing for `onehook log --since/--until`, in the spirit of Ruby's
//! `DateTime.parse`: the date and the time may come in many common forms, in any order,
//! with day names and other words ignored; without a zone the time is UTC.
//!
//! Accepted, for example: `2019-09-23`, `2019-09-23T15:10:38Z`, `2019-09-23 15:10 +02:00`,
//! `2019/09/23`, `23/09/2019`, `23.09.2019`, `09/23` (month/day), `Sep 23 2019`,
//! `23 September 2019 3pm`, `Mon, 23 Sep 2019 15:10:38 GMT`, `20190923`, `15:10` (today),
//! and `@1569251438` (epoch seconds).

use chrono::{Datelike, NaiveDate, Utc};

/// Why a date could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid date: {input:?} ({reason})")]
pub struct DateError {
    pub input: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Num(String),
    Word(String),
    Sym(char),
    Space,
}

/// Parses `input` into epoch seconds; dates without a year or without a day at all take them
/// from `today` (UTC).
pub fn parse_date_with_today(input: &str, today: NaiveDate) -> Result<i64, DateError> {
    let err = |reason: &str| DateError {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = input.trim();
    if let Some(epoch) = trimmed.strip_prefix('@') {
        return epoch
            .trim()
            .parse::<i64>()
            .map_err(|_| err("epoch seconds must be an integer"));
    }
    let tokens = tokenize(trimmed);
    let mut used = vec![false; tokens.len()];

    let time = take_time(&tokens, &mut used);
    let mut offset = match &time {
        Some(t) => take_zone_after(&tokens, &mut used, t.end),
        None => None,
    };
    if offset.is_none() {
        offset = take_any_zone(&tokens, &mut used);
    }
    let date = take_date(&tokens, &mut used, today).map_err(|r| err(&r))?;

    if let Some(i) = tokens
        .iter()
        .enumerate()
        .position(|(i, t)| !used[i] && matches!(t, Token::Num(_)))
        && let Token::Num(n) = &tokens[i]
    {
        return Err(err(&format!("unexpected number {n}")));
    }
    if time.is_none() && date.is_none() {
        return Err(err("no date or time found"));
    }
    let (hour, minute, second) = time
        .map(|t| (t.hour, t.minute, t.second))
        .unwrap_or((0, 0, 0));
    let day = date.unwrap_or(today);
    let naive = day
        .and_hms_opt(hour, minute, second)
        .ok_or_else(|| err("time out of range"))?;
    Ok(naive.and_utc().timestamp() - i64::from(offset.unwrap_or(0)))
}

/// Parses `input` into epoch seconds, with today's date (UTC) where the input has none.
pub fn parse_date(input: &str) -> Result<i64, DateError> {
    parse_date_with_today(input, Utc::now().date_naive())
}

fn tokenize(s: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            let mut n = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(d);
                chars.next();
            }
            tokens.push(Token::Num(n));
        } else if c.is_alphabetic() {
            let mut w = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_alphabetic()) {
                w.extend(d.to_lowercase());
                chars.next();
            }
            tokens.push(Token::Word(w));
        } else if c.is_whitespace() {
            while chars.peek().is_some_and(|d| d.is_whitespace()) {
                chars.next();
            }
            tokens.push(Token::Space);
        } else {
            tokens.push(Token::Sym(c));
            chars.next();
        }
    }
    tokens
}

struct Time {
    hour: u32,
    minute: u32,
    second: u32,
    /// Index just past the time's last token.
    end: usize,
}

fn num(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i) {
        Some(Token::Num(n)) => Some(n),
        _ => None,
    }
}

fn word(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i) {
        Some(Token::Word(w)) => Some(w),
        _ => None,
    }
}

fn sym(tokens: &[Token], i: usize, c: char) -> bool {
    tokens.get(i) == Some(&Token::Sym(c))
}

fn skip_space(tokens: &[Token], i: usize) -> usize {
    if tokens.get(i) == Some(&Token::Space) {
        i + 1
    } else {
        i
    }
}

/// `H:MM[:SS[.frac]] [am|pm]` or `H am|pm`.
fn take_time(tokens: &[Token], used: &mut [bool]) -> Option<Time> {
    for i in 0..tokens.len() {
        let Some(h) = num(tokens, i).filter(|h| h.len() <= 2) else {
            continue;
        };
        let mut hour: u32 = h.parse().ok()?;
        let (mut minute, mut second) = (0, 0);
        let mut end;
        if sym(tokens, i + 1, ':') && num(tokens, i + 2).is_some_and(|m| m.len() == 2) {
            minute = num(tokens, i + 2)?.parse().ok()?;
            end = i + 3;
            if sym(tokens, end, ':') && num(tokens, end + 1).is_some_and(|s| s.len() == 2) {
                second = num(tokens, end + 1)?.parse().ok()?;
                end += 2;
                if (sym(tokens, end, '.') || sym(tokens, end, ','))
                    && num(tokens, end + 1).is_some()
                {
                    end += 2;
                }
            }
        } else {
            let j = skip_space(tokens, i + 1);
            if !matches!(word(tokens, j), Some("am" | "pm")) {
                continue;
            }
            end = i + 1;
        }
        let j = skip_space(tokens, end);
        if let Some(meridian @ ("am" | "pm")) = word(tokens, j) {
            hour %= 12;
            if meridian == "pm" {
                hour += 12;
            }
            end = j + 1;
        }
        // A preceding 'T' (ISO 8601) belongs to the time.
        if i > 0 && word(tokens, i - 1) == Some("t") {
            used[i - 1] = true;
        }
        for u in used.iter_mut().take(end).skip(i) {
            *u = true;
        }
        return Some(Time {
            hour,
            minute,
            second,
            end,
        });
    }
    None
}

/// A zone right after the time: `Z`, a name, or `±HH[:MM]`/`±HHMM`.
fn take_zone_after(tokens: &[Token], used: &mut [bool], end: usize) -> Option<i32> {
    let j = skip_space(tokens, end);
    if let Some(w) = word(tokens, j)
        && let Some(offset) = zone_name(w)
    {
        used[j] = true;
        return Some(offset);
    }
    numeric_zone(tokens, used, j)
}

fn numeric_zone(tokens: &[Token], used: &mut [bool], j: usize) -> Option<i32> {
    let sign = if sym(tokens, j, '+') {
        1
    } else if sym(tokens, j, '-') {
        -1
    } else {
        return None;
    };
    let digits = num(tokens, j + 1)?;
    let (hours, minutes, end) = match digits.len() {
        1 | 2 if sym(tokens, j + 2, ':') && num(tokens, j + 3).is_some_and(|m| m.len() == 2) => (
            digits.parse::<i32>().ok()?,
            num(tokens, j + 3)?.parse::<i32>().ok()?,
            j + 4,
        ),
        1 | 2 => (digits.parse::<i32>().ok()?, 0, j + 2),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
            j + 2,
        ),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    for u in used.iter_mut().take(end).skip(j) {
        *u = true;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// A zone name anywhere (`2019-09-23 UTC`).
fn take_any_zone(tokens: &[Token], used: &mut [bool]) -> Option<i32> {
    for (i, t) in tokens.iter().enumerate() {
        if let Token::Word(w) = t
            && !used[i]
            && let Some(offset) = zone_name(w)
        {
            used[i] = true;
            return Some(offset);
        }
    }
    None
}

fn zone_name(w: &str) -> Option<i32> {
    let hours = match w {
        "z" | "utc" | "gmt" | "ut" => 0,
        "est" => -5,
        "edt" => -4,
        "cst" => -6,
        "cdt" => -5,
        "mst" => -7,
        "mdt" => -6,
        "pst" => -8,
        "pdt" => -7,
        "cet" => 1,
        "cest" => 2,
        "eet" => 2,
        "eest" => 3,
        "bst" => 1,
        "jst" => 9,
        _ => return None,
    };
    Some(hours * 3600)
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month_number(w: &str) -> Option<u32> {
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| m.starts_with(w))
        .map(|i| i as u32 + 1)
}

/// A year as written: two digits are completed like Ruby does (69-99 -> 19xx, else 20xx).
fn year(text: &str) -> Option<i32> {
    let y: i32 = text.parse().ok()?;
    if text.len() == 2 {
        Some(if y >= 69 { 1900 + y } else { 2000 + y })
    } else {
        Some(y)
    }
}

fn ymd(y: i32, m: u32, d: u32) -> Result<NaiveDate, String> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| format!("no such day {y:04}-{m:02}-{d:02}"))
}

fn mark(used: &mut [bool], from: usize, to: usize) {
    for u in used.iter_mut().take(to).skip(from) {
        *u = true;
    }
}

fn take_date(
    tokens: &[Token],
    used: &mut [bool],
    today: NaiveDate,
) -> Result<Option<NaiveDate>, String> {
    let n = tokens.len();
    for i in 0..n {
        if used[i] {
            continue;
        }
        // y-m-d
        if let Some(a) = num(tokens, i)
            && sym(tokens, i + 1, '-')
            && let Some(b) = num(tokens, i + 2)
            && sym(tokens, i + 3, '-')
            && let Some(c) = num(tokens, i + 4)
        {
            let date = ymd(
                year(a).ok_or("bad year")?,
                b.parse().map_err(|_| "bad month")?,
                c.parse().map_err(|_| "bad day")?,
            )?;
            mark(used, i, i + 5);
            return Ok(Some(date));
        }
        // a/b[/c] and a.b.c
        for sep in ['/', '.'] {
            if let Some(a) = num(tokens, i)
                && sym(tokens, i + 1, sep)
                && let Some(b) = num(tokens, i + 2)
            {
                let c = if sym(tokens, i + 3, sep) {
                    num(tokens, i + 4)
                } else {
                    None
                };
                if sep == '.' && c.is_none() {
                    continue;
                }
                let date = match c {
                    Some(c) => three_part_date(a, b, c)?,
                    None => ymd(
                        today.year(),
                        a.parse().map_err(|_| "bad month")?,
                        b.parse().map_err(|_| "bad day")?,
                    )?,
                };
                mark(used, i, if c.is_some() { i + 5 } else { i + 3 });
                return Ok(Some(date));
            }
        }
    }
    // Month names: "23 Sep [2019]" or "Sep 23[,] [2019]".
    for i in 0..n {
        let Some(month) = word(tokens, i).and_then(month_number) else {
            continue;
        };
        let before = i.checked_sub(1).map(|j| skip_back_space(tokens, j));
        if let Some(j) = before
            && !used[j]
            && let Some(d) = num(tokens, j).filter(|d| d.len() <= 2)
        {
            let day: u32 = d.parse().map_err(|_| "bad day")?;
            let (y, end) = year_after(tokens, used, i + 1);
            let date = ymd(y.unwrap_or(today.year()), month, day)?;
            mark(used, j, i + 1);
            mark(used, i + 1, end);
            return Ok(Some(date));
        }
        let j = skip_space(tokens, i + 1);
        if !used.get(j).copied().unwrap_or(true)
            && let Some(d) = num(tokens, j).filter(|d| d.len() <= 2)
        {
            let day: u32 = d.parse().map_err(|_| "bad day")?;
            let mut k = j + 1;
            if matches!(word(tokens, k), Some("st" | "nd" | "rd" | "th")) {
                k += 1;
            }
            if sym(tokens, k, ',') {
                k += 1;
            }
            let (y, end) = year_after(tokens, used, k);
            let date = ymd(y.unwrap_or(today.year()), month, day)?;
            mark(used, i, k);
            mark(used, k, end);
            return Ok(Some(date));
        }
        let (y, end) = year_after(tokens, used, i + 1);
        if let Some(y) = y {
            mark(used, i, end);
            return ymd(y, month, 1).map(Some);
        }
    }
    // yyyymmdd
    for (i, is_used) in used.iter_mut().enumerate() {
        if !*is_used && let Some(d) = num(tokens, i).filter(|d| d.len() == 8) {
            let date = ymd(
                d[..4].parse().map_err(|_| "bad year")?,
                d[4..6].parse().map_err(|_| "bad month")?,
                d[6..].parse().map_err(|_| "bad day")?,
            )?;
            *is_used = true;
            return Ok(Some(date));
        }
    }
    Ok(None)
}

fn skip_back_space(tokens: &[Token], j: usize) -> usize {
    if tokens.get(j) == Some(&Token::Space) && j > 0 {
        j - 1
    } else {
        j
    }
}

/// A year right after position `k` (spaces skipped): 4 digits, or 2 digits not followed by ':'.
fn year_after(tokens: &[Token], used: &[bool], k: usize) -> (Option<i32>, usize) {
    let j = skip_space(tokens, k);
    match num(tokens, j) {
        Some(y) if !used[j] && (y.len() == 4 || (y.len() == 2 && !sym(tokens, j + 1, ':'))) => {
            (year(y), j + 1)
        }
        _ => (None, k),
    }
}

/// `a/b/c` (or dots): a 3+ digit first part is y/m/d; a 3+ digit last part is d/m/y, or m/d/y
/// when only that reading is a valid date; two-digit parts are y/m/d, else m/d/y.
fn three_part_date(a: &str, b: &str, c: &str) -> Result<NaiveDate, String> {
    let (ai, bi, ci): (u32, u32, u32) = (
        a.parse().map_err(|_| "bad number")?,
        b.parse().map_err(|_| "bad number")?,
        c.parse().map_err(|_| "bad number")?,
    );
    if a.len() > 2 {
        return ymd(year(a).ok_or("bad year")?, bi, ci);
    }
    if c.len() > 2 {
        let y = year(c).ok_or("bad year")?;
        return ymd(y, bi, ai).or_else(|e| ymd(y, ai, bi).map_err(|_| e));
    }
    let ya = year(a).ok_or("bad year")?;
    let yc = year(c).ok_or("bad year")?;
    ymd(ya, bi, ci).or_else(|e| ymd(yc, ai, bi).map_err(|_| e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 10).unwrap()
    }

    fn p(s: &str) -> i64 {
        parse_date_with_today(s, today()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepted_forms() {
        let midnight = 1569196800; // 2019-09-23T00:00:00Z
        let t = 1569251438; // 2019-09-23T15:10:38Z
        assert_eq!(p("2019-09-23"), midnight);
        assert_eq!(p("2019-09-23T15:10:38Z"), t);
        assert_eq!(p("2019-09-23T15:10:38"), t);
        assert_eq!(p("2019-09-23 15:10:38"), t);
        assert_eq!(p("2019-09-23 17:10:38 +02:00"), t);
        assert_eq!(p("2019-09-23T17:10:38+0200"), t);
        assert_eq!(p("2019-09-23 10:10:38 -05"), t);
        assert_eq!(p("2019-09-23 10:10:38 EST"), t);
        assert_eq!(p("2019/09/23"), midnight);
        assert_eq!(p("23/09/2019"), midnight);
        assert_eq!(p("09/23/2019"), midnight);
        assert_eq!(p("23.09.2019"), midnight);
        assert_eq!(p("19/09/23"), midnight);
        assert_eq!(p("09/23/19"), midnight);
        assert_eq!(p("Sep 23 2019"), midnight);
        assert_eq!(p("September 23, 2019 15:10:38"), t);
        assert_eq!(p("23 Sep 2019 3:10:38 pm"), t);
        assert_eq!(p("Mon, 23 Sep 2019 15:10:38 GMT"), t);
        assert_eq!(p("20190923"), midnight);
        assert_eq!(p("2019-09-23 3pm"), midnight + 15 * 3600);
        assert_eq!(p("2019-09-23 12am"), midnight);
        assert_eq!(p("@1569251438"), t);
        assert_eq!(p("2019-09-23 UTC"), midnight);
    }

    #[test]
    fn missing_parts_come_from_today() {
        let today_midnight = 1710028800; // 2024-03-10T00:00:00Z
        assert_eq!(p("15:10"), today_midnight + 15 * 3600 + 600);
        assert_eq!(p("09/23"), 1727049600); // 2024-09-23
        assert_eq!(p("Sep 23"), 1727049600);
    }

    #[test]
    fn rejected_forms() {
        for bad in [
            "",
            "yesterday",
            "2019-13-01",
            "2019-02-30",
            "31/31/2019",
            "25:00",
            "@x",
            "2019-09-23 17",
            "hello 12",
        ] {
            assert!(
                parse_date_with_today(bad, today()).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
