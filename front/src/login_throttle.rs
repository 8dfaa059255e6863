//! Throttled logins: after repeated failed logins for a user name from one client address, or
//! for many user names from one address, further attempts are refused for a while without
//! checking the password.
//!
//! A refused attempt gets the same failure as a wrong password, and its password is never
//! compared, so the answer tells nothing about it. The refusal lasts `DELAY` after the
//! `FAILURES`th failure and doubles with every further failure, up to `MAX_DELAY`; attempts
//! refused meanwhile are not failures, so they do not lengthen it. A successful login forgets
//! its user's failures.
//!
//! A user is refused at the address its failures came from, not everywhere: otherwise anyone
//! could lock oneadmin out, and with it the HEM and the hooks, which log in as oneadmin, by
//! sending wrong passwords from anywhere. An address is refused as a whole only once
//! `ADDRESS_USERS` different user names failed from it (spraying one password over many
//! accounts): many wrong passwords for one user leave the other users at that address (the
//! HEM and the CLIs share the loopback address) untouched.
//!
//! Memory is bounded: names are kept as keyed hashes (a session string can be megabytes), each
//! table holds at most [`ENTRIES_KEPT`] records, and a full table drops the records that hold
//! no running refusal, which a flood of random names consists of.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Records kept per table (user names, addresses).
pub const ENTRIES_KEPT: usize = 10_000;
/// How long a table that could not be emptied is left full before it is swept again, so that
/// a full table does not cost a sweep per failed login.
const SWEEP_PAUSE: Duration = Duration::from_secs(1);

/// `LOGIN_THROTTLE = [ FAILURES = n, DELAY = s, MAX_DELAY = s, ADDRESS_USERS = n ]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed logins of one user name from one address before its attempts from there are
    /// refused.
    pub failures: u32,
    /// The first refusal; each further failure doubles it.
    pub delay: Duration,
    /// The longest refusal.
    pub max_delay: Duration,
    /// Different user names failing from one address before the address is refused.
    pub address_users: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            failures: 5,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            address_users: 10,
        }
    }
}

impl ThrottleConfig {
    /// After this long without a failure a record is forgotten: long enough that waiting out
    /// refusals does not earn fresh free attempts soon.
    fn forget_after(&self) -> Duration {
        self.max_delay.saturating_mul(10)
    }

    /// The refusal after the `step`th refusal-worthy failure (0 for the first).
    fn refusal(&self, step: u32) -> Duration {
        self.delay
            .saturating_mul(1u32 << step.min(30))
            .min(self.max_delay)
    }
}

/// Whether a login attempt may be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Check,
    /// Refused unchecked until then.
    Refused(Instant),
}

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last_failure: Instant,
    refused_until: Option<Instant>,
}

impl Record {
    fn new(now: Instant) -> Record {
        Record {
            failures: 0,
            last_failure: now,
            refused_until: None,
        }
    }

    fn refusing(&self, now: Instant) -> Option<Instant> {
        self.refused_until.filter(|t| *t > now)
    }

    /// Kept when a full table is swept: it refuses now, or it has reached a refusal before
    /// and must not lose what it escalated to.
    fn escalated(&self, now: Instant, config: &ThrottleConfig) -> bool {
        self.refusing(now).is_some() || self.failures >= config.failures
    }

    fn stale(&self, now: Instant, config: &ThrottleConfig) -> bool {
        self.refusing(now).is_none()
            && now.saturating_duration_since(self.last_failure) > config.forget_after()
    }
}

#[derive(Clone, Debug)]
struct AddressRecord {
    /// The distinct user names (hashed) that failed since the last refusal.
    names: Vec<u64>,
    /// Refusals so far, for the doubling.
    refusals: u32,
    record: Record,
}

#[derive(Debug)]
struct Tables {
    users: HashMap<u64, Record>,
    addresses: HashMap<IpAddr, AddressRecord>,
    /// When a table may next be swept after a sweep that freed nothing.
    next_sweep: Option<Instant>,
    /// When stale records are next dropped.
    next_purge: Instant,
}

/// The failed-login records of the front-end, shared by every call.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    /// Keys user names; per process, so no client can choose names that collide.
    hasher: RandomState,
    /// Records in both tables: while zero, a login costs no lock.
    tracked: AtomicUsize,
    tables: Mutex<Tables>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            config,
            hasher: RandomState::new(),
            tracked: AtomicUsize::new(0),
            tables: Mutex::new(Tables {
                users: HashMap::new(),
                addresses: HashMap::new(),
                next_sweep: None,
                next_purge: Instant::now(),
            }),
        }
    }

    /// Whether an attempt for `user` from `address` may be checked now.
    pub fn admit(&self, user: &str, address: IpAddr) -> Admission {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Admission::Check;
        }
        let now = Instant::now();
        let key = self.key(user, address);
        let tables = self.lock();
        let by_user = tables.users.get(&key).and_then(|r| r.refusing(now));
        let by_address = tables
            .addresses
            .get(&address_key(address))
            .and_then(|r| r.record.refusing(now));
        match by_user.max(by_address) {
            Some(until) => Admission::Refused(until),
            None => Admission::Check,
        }
    }

    /// A checked attempt failed.
    pub fn failed(&self, user: &str, address: IpAddr) {
        let now = Instant::now();
        let key = self.key(user, address);
        let name = self.hasher.hash_one(user);
        let config = self.config;
        let mut tables = self.lock();
        tables.purge(now, &config);
        if let Some(record) = tables.entry_user(key, now, &config) {
            if record.stale(now, &config) {
                *record = Record::new(now);
            }
            record.failures = record.failures.saturating_add(1);
            record.last_failure = now;
            if record.failures >= config.failures {
                let refusal = config.refusal(record.failures - config.failures);
                record.refused_until = Some(now + refusal);
                tracing::warn!(
                    user = ?truncated(user),
                    address = %address,
                    failures = record.failures,
                    refused_ms = refusal.as_millis() as u64,
                    "failed logins: this user's logins from this address are refused for a while"
                );
            }
        }
        if let Some(entry) = tables.entry_address(address_key(address), now, &config) {
            if entry.record.stale(now, &config) {
                *entry = AddressRecord::new(now);
            }
            entry.record.failures = entry.record.failures.saturating_add(1);
            entry.record.last_failure = now;
            if !entry.names.contains(&name) {
                entry.names.push(name);
            }
            if entry.names.len() >= config.address_users {
                let refusal = config.refusal(entry.refusals);
                entry.refusals = entry.refusals.saturating_add(1);
                entry.names.clear();
                entry.record.refused_until = Some(now + refusal);
                tracing::warn!(
                    address = %address,
                    users = config.address_users,
                    refused_ms = refusal.as_millis() as u64,
                    "failed logins for many users: logins from this address are refused for a while"
                );
            }
        }
        self.tracked.store(tables.len(), Ordering::Relaxed);
    }

    /// A checked attempt succeeded: the user's failures at this address are forgotten. The
    /// address's are kept, or one valid account would clear the record of a spraying client.
    pub fn succeeded(&self, user: &str, address: IpAddr) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let key = self.key(user, address);
        let mut tables = self.lock();
        if tables.users.remove(&key).is_some() {
            self.tracked.store(tables.len(), Ordering::Relaxed);
        }
    }

    fn key(&self, user: &str, address: IpAddr) -> u64 {
        self.hasher.hash_one((user, address_key(address)))
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // Every update leaves the tables consistent; a panicking holder breaks nothing.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let t = self.lock();
        (t.users.len(), t.addresses.len())
    }
}

impl AddressRecord {
    fn new(now: Instant) -> AddressRecord {
        AddressRecord {
            names: Vec::new(),
            refusals: 0,
            record: Record::new(now),
        }
    }
}

impl Tables {
    fn len(&self) -> usize {
        self.users.len() + self.addresses.len()
    }

    fn purge(&mut self, now: Instant, config: &ThrottleConfig) {
        if now < self.next_purge {
            return;
        }
        self.users.retain(|_, r| !r.stale(now, config));
        self.addresses.retain(|_, r| !r.record.stale(now, config));
        self.next_purge = now + config.forget_after().min(Duration::from_secs(60));
    }

    /// Makes room in a full table: `Some` unless every record is escalated and the table was
    /// just swept.
    fn room(&mut self, full: fn(&Tables) -> bool, now: Instant, config: &ThrottleConfig) -> bool {
        if !full(self) {
            return true;
        }
        if self.next_sweep.is_some_and(|t| now < t) {
            return false;
        }
        self.users.retain(|_, r| r.escalated(now, config));
        self.addresses
            .retain(|_, r| r.record.escalated(now, config) || r.refusals > 0);
        if full(self) {
            tracing::warn!(
                kept = ENTRIES_KEPT,
                "the failed-login table is full of refused users or addresses; new ones are not tracked for a while"
            );
            self.next_sweep = Some(now + SWEEP_PAUSE);
            return false;
        }
        self.next_sweep = None;
        true
    }

    fn entry_user(
        &mut self,
        key: u64,
        now: Instant,
        config: &ThrottleConfig,
    ) -> Option<&mut Record> {
        if !self.users.contains_key(&key)
            && !self.room(|t| t.users.len() >= ENTRIES_KEPT, now, config)
        {
            return None;
        }
        Some(self.users.entry(key).or_insert_with(|| Record::new(now)))
    }

    fn entry_address(
        &mut self,
        key: IpAddr,
        now: Instant,
        config: &ThrottleConfig,
    ) -> Option<&mut AddressRecord> {
        if !self.addresses.contains_key(&key)
            && !self.room(|t| t.addresses.len() >= ENTRIES_KEPT, now, config)
        {
            return None;
        }
        Some(
            self.addresses
                .entry(key)
                .or_insert_with(|| AddressRecord::new(now)),
        )
    }
}

/// One IPv6 client usually holds a whole /64, so that is what is counted.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// A user name as logged: a session string can be anything, of any length.
fn truncated(user: &str) -> &str {
    match user.char_indices().nth(64) {
        Some((i, _)) => &user[..i],
        None => user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            failures: 3,
            delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(40),
            address_users: 4,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    fn refused(t: &LoginThrottle, user: &str, address: IpAddr) -> bool {
        matches!(t.admit(user, address), Admission::Refused(_))
    }

    #[test]
    fn a_user_is_refused_after_its_failures_and_other_users_are_not() {
        let t = LoginThrottle::new(config());
        for _ in 0..2 {
            assert!(!refused(&t, "alice", A));
            t.failed("alice", A);
        }
        assert!(!refused(&t, "alice", A));
        t.failed("alice", A);
        assert!(refused(&t, "alice", A));
        assert!(
            !refused(&t, "alice", B),
            "only where the failures came from: no one locks a user out from elsewhere"
        );
        assert!(
            !refused(&t, "bob", A),
            "one user's failures leave its address open"
        );
        let Admission::Refused(until) = t.admit("alice", A) else {
            unreachable!()
        };
        let left = until.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(9) && left <= Duration::from_secs(10));
    }

    #[test]
    fn refusals_double_up_to_the_cap_and_a_success_forgets_them() {
        let c = config();
        assert_eq!(c.refusal(0), Duration::from_secs(10));
        assert_eq!(c.refusal(1), Duration::from_secs(20));
        assert_eq!(c.refusal(2), Duration::from_secs(40));
        assert_eq!(c.refusal(3), Duration::from_secs(40));
        assert_eq!(c.refusal(u32::MAX), Duration::from_secs(40));
        let t = LoginThrottle::new(c);
        for _ in 0..3 {
            t.failed("alice", A);
        }
        t.succeeded("alice", A);
        assert!(!refused(&t, "alice", A));
        assert_eq!(t.sizes().0, 0);
    }

    #[test]
    fn an_address_is_refused_after_failures_for_many_users() {
        let t = LoginThrottle::new(config());
        for name in ["a", "b", "c"] {
            t.failed(name, A);
        }
        assert!(!refused(&t, "zed", A));
        t.failed("a", A);
        assert!(!refused(&t, "zed", A), "a name counts once");
        t.failed("d", A);
        assert!(refused(&t, "zed", A));
        assert!(!refused(&t, "zed", B));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_prefix() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), A);
    }

    /// A flood of random names from many addresses does not grow the tables past their bound,
    /// and does not wipe the record of a refused user.
    #[test]
    fn the_tables_are_bounded_and_keep_refused_users() {
        let t = LoginThrottle::new(ThrottleConfig {
            address_users: 1000,
            ..config()
        });
        for _ in 0..3 {
            t.failed("alice", A);
        }
        for i in 0..(3 * ENTRIES_KEPT) {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            t.failed(&format!("random-{i}"), address);
            let (users, addresses) = t.sizes();
            assert!(users <= ENTRIES_KEPT && addresses <= ENTRIES_KEPT);
        }
        assert!(refused(&t, "alice", A));
    }

    #[test]
    fn long_names_are_logged_truncated() {
        assert_eq!(truncated("alice"), "alice");
        assert_eq!(truncated(&"é".repeat(100)).chars().count(), 64);
    }
}
