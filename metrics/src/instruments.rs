//! Instruments a hot path can update without a lock: every update is one or two relaxed atomic
//! additions. Readers (a scrape) may see one update's parts a moment apart, never a torn value.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }

    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(&self, n: i64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) for durations from a few milliseconds to minutes: hook runs and the
/// wait before them.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Most finite buckets a histogram may have.
const MAX_BUCKETS: usize = 16;

/// A histogram of durations with fixed bucket bounds: an observation adds to one bucket, the
/// sum (in microseconds) and nothing else.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts per finite bucket, then the count above the last bound.
    buckets: [AtomicU64; MAX_BUCKETS + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// `bounds` are ascending seconds, at most 16 of them; more are ignored.
    pub const fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; MAX_BUCKETS + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    fn bounds(&self) -> &'static [f64] {
        let n = self.bounds.len().min(MAX_BUCKETS);
        &self.bounds[..n]
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let bounds = self.bounds();
        let i = bounds.partition_point(|&b| b < secs);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// `(upper bound, cumulative count)` per finite bucket, the total count (the `+Inf`
    /// bucket, so `_count` always equals it) and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let bounds = self.bounds();
        let mut cumulative = 0u64;
        let mut out = Vec::with_capacity(bounds.len());
        for (i, &b) in bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            out.push((b, cumulative));
        }
        cumulative += self.buckets[bounds.len()].load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (out, cumulative, sum)
    }
}

/// Counters by an integer key (a hook id) and a fixed set of columns (outcomes), in an
/// open-addressing table of atomics: a key is claimed once with a compare-and-swap and counted
/// with one addition after that. Keys beyond the table's capacity share one overflow row, so
/// the series a scrape shows stay bounded whatever the keys.
#[derive(Debug)]
pub struct KeyedCounters<const COLS: usize> {
    slots: Box<[Slot<COLS>]>,
    overflow: Slot<COLS>,
}

/// Marks an unclaimed slot.
const EMPTY: i64 = i64::MIN;

#[derive(Debug)]
struct Slot<const COLS: usize> {
    key: AtomicI64,
    counts: [AtomicU64; COLS],
}

impl<const COLS: usize> Slot<COLS> {
    fn new() -> Self {
        Slot {
            key: AtomicI64::new(EMPTY),
            counts: [const { AtomicU64::new(0) }; COLS],
        }
    }
}

/// One row of [`KeyedCounters::rows`]: the key (`None` for the overflow row) and its counts.
pub type Row<const COLS: usize> = (Option<i64>, [u64; COLS]);

impl<const COLS: usize> KeyedCounters<COLS> {
    /// A table for up to `capacity` distinct keys (`i64::MIN` always goes to the overflow row).
    pub fn new(capacity: usize) -> Self {
        KeyedCounters {
            slots: (0..capacity.max(1)).map(|_| Slot::new()).collect(),
            overflow: Slot::new(),
        }
    }

    pub fn inc(&self, key: i64, col: usize) {
        if let Some(c) = self.slot(key).counts.get(col) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn slot(&self, key: i64) -> &Slot<COLS> {
        if key == EMPTY {
            return &self.overflow;
        }
        let n = self.slots.len();
        // Fibonacci hashing spreads consecutive ids (the usual hook ids) over the table.
        let start = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize % n;
        for probe in 0..n {
            let slot = &self.slots[(start + probe) % n];
            let current = slot.key.load(Ordering::Acquire);
            if current == key {
                return slot;
            }
            if current == EMPTY {
                match slot
                    .key
                    .compare_exchange(EMPTY, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return slot,
                    Err(other) if other == key => return slot,
                    Err(_) => {}
                }
            }
        }
        &self.overflow
    }

    /// Every claimed key's counts, by key, then the overflow row if it counted anything.
    pub fn rows(&self) -> Vec<Row<COLS>> {
        let read = |s: &Slot<COLS>| -> [u64; COLS] {
            std::array::from_fn(|i| s.counts[i].load(Ordering::Relaxed))
        };
        let mut rows: Vec<Row<COLS>> = self
            .slots
            .iter()
            .filter_map(|s| {
                let key = s.key.load(Ordering::Acquire);
                (key != EMPTY).then(|| (Some(key), read(s)))
            })
            .collect();
        rows.sort_by_key(|r| r.0);
        let overflow = read(&self.overflow);
        if overflow.iter().any(|&c| c > 0) {
            rows.push((None, overflow));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_equals_inf() {
        static BOUNDS: &[f64] = &[0.01, 0.1, 1.0];
        let h = Histogram::new(BOUNDS);
        for ms in [1, 10, 50, 500, 5_000] {
            h.observe(Duration::from_millis(ms));
        }
        let (buckets, count, sum) = h.snapshot();
        // 10 ms lands in `le="0.01"`: a bound is inclusive.
        assert_eq!(buckets, vec![(0.01, 2), (0.1, 3), (1.0, 4)]);
        assert_eq!(count, 5);
        assert!((sum - 5.561).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn keyed_counters_keep_keys_apart_and_overflow_beyond_capacity() {
        let t: KeyedCounters<2> = KeyedCounters::new(3);
        for key in [7, 7, 8, 9, 10, 11, i64::MIN] {
            t.inc(key, 0);
        }
        t.inc(8, 1);
        t.inc(8, 5); // no such column: ignored
        let rows = t.rows();
        assert_eq!(
            rows,
            vec![
                (Some(7), [2, 0]),
                (Some(8), [1, 1]),
                (Some(9), [1, 0]),
                (None, [3, 0]),
            ]
        );
    }

    #[test]
    fn keyed_counters_count_every_update_from_many_threads() {
        let t: KeyedCounters<1> = KeyedCounters::new(64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..10_000 {
                        t.inc(i % 50, 0);
                    }
                });
            }
        });
        let rows = t.rows();
        assert_eq!(rows.len(), 50);
        assert!(rows.iter().all(|r| r.1 == [800]), "{rows:?}");
    }
}
