//! NATS subjects of the distributed mode (ARCHITECTURE.md "Distributed mode").
//!
//! Each event the driver journals in JetStream is one message whose subject carries the
//! reference key's words as tokens, so that a NATS subscriber filters the way a ZeroMQ
//! subscriber does with a key prefix, and ends with the event's partition:
//!
//! | reference key (ZeroMQ frame 1) | subject |
//! |---|---|
//! | `EVENT API one.vm.allocate 1` | `one.event.api.one_vm_allocate.1.<p>` |
//! | `EVENT VM 42/PENDING/LCM_INIT ` and `EVENT STATE VM/PENDING/LCM_INIT/42 ` | `one.event.state.VM.PENDING.LCM_INIT.42.<p>` |
//! | `EVENT HOST 3/ERROR/ ` and `EVENT STATE HOST/ERROR//3 ` | `one.event.state.HOST.ERROR.-.3.<p>` |
//! | `RETRY` | `one.retry.<p>` |
//! | `EVENT ` (a message with no known HOOK_TYPE) | `one.event.unknown.<p>` |
//!
//! `one` is the configurable prefix. A token holds only `A-Z a-z 0-9 _ -`; any other character
//! (the dots of a call name among them) becomes `_`, an empty token `-`. The reference keys
//! travel in the message's headers without their trailing blanks: the first in `One-Key`, the
//! others in `One-Key-2` and `One-Key-3`. The content is frame 2, the base64 HOOK_MESSAGE.
//! `<p>` is the partition: the decimal number [`partition_of`] gives for the event's resource,
//! or `all` for the API calls that change hooks, which every partition's consumer reads (each
//! HEM reloads its hook maps from them).
//!
//! Filters that match the reference prefixes: `EVENT API one.vm.allocate` is
//! `one.event.api.one_vm_allocate.>`, `EVENT STATE VM/ACTIVE/` is
//! `one.event.state.VM.ACTIVE.>`, `EVENT VM 42/` is `one.event.state.VM.*.*.42.*`, `EVENT` is
//! `one.event.>`.
//!
//! Results go to `one.result.<hook_id>`, one message per execution, whose payload is the frame
//! the ZeroMQ result socket takes (`<rc> <hook_id> <base64 body>`).

use crate::keys::{RELOAD_CALLS, RETRY_KEY};

/// The default subject prefix.
pub const DEFAULT_PREFIX: &str = "one";

/// The header that carries the first reference key of an event (`One-Key-2`… the others).
pub const KEY_HEADER: &str = "One-Key";

/// Stream metadata key holding the number of partitions the driver writes.
pub const PARTITIONS_METADATA: &str = "one_partitions";

/// Where an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// One partition: only the HEM that holds it runs the event's hooks.
    Of(u32),
    /// Every partition's consumer reads it (API calls that change hooks).
    All,
}

impl Partition {
    fn token(self) -> String {
        match self {
            Partition::Of(n) => n.to_string(),
            Partition::All => "all".to_string(),
        }
    }

    /// Reads the last token of a subject back.
    pub fn from_subject(subject: &str) -> Option<Partition> {
        match subject.rsplit('.').next()? {
            "all" => Some(Partition::All),
            n => n.parse().ok().map(Partition::Of),
        }
    }
}

/// The partition of a resource (`VM/42`, `vm/7`, or `""`): FNV-1a of its bytes, modulo the
/// partition count. Executions of one hook on one resource run in event order, so all the
/// events of a resource must go to one partition; the driver and the HEMs share this function.
pub fn partition_of(resource: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in resource.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// The partition of an event with `keys` about `resource`: `All` for the calls that change
/// hooks, else [`partition_of`].
pub fn event_partition(keys: &[String], resource: &str, partitions: u32) -> Partition {
    if let Some(first) = keys.first() {
        let mut words = first.split_ascii_whitespace();
        if words.next() == Some("EVENT")
            && words.next() == Some("API")
            && words
                .next()
                .is_some_and(|call| RELOAD_CALLS.contains(&call))
        {
            return Partition::All;
        }
    }
    Partition::Of(partition_of(resource, partitions))
}

/// The subject of an event from its reference keys (the first key decides, as it names the
/// event fully).
pub fn event_subject(prefix: &str, keys: &[String], partition: Partition) -> String {
    let part = partition.token();
    let first = keys.first().map(String::as_str).unwrap_or("");
    let mut words = first.split_ascii_whitespace();
    match (words.next(), words.next()) {
        (Some(RETRY_KEY), None) => format!("{prefix}.retry.{part}"),
        (Some("EVENT"), Some("API")) => {
            let call = token(words.next().unwrap_or(""));
            let result = token(words.next().unwrap_or(""));
            format!("{prefix}.event.api.{call}.{result}.{part}")
        }
        (Some("EVENT"), Some(object)) if object != "STATE" => {
            // `EVENT <OBJECT> <id>/<state>/<lcm> `
            let rest = words.next().unwrap_or("");
            let mut fields = rest.splitn(3, '/');
            let id = fields.next().unwrap_or("");
            let state = fields.next().unwrap_or("");
            let lcm = fields.next().unwrap_or("");
            format!(
                "{prefix}.event.state.{}.{}.{}.{}.{part}",
                token(object),
                token(state),
                token(lcm),
                token(id)
            )
        }
        _ => format!("{prefix}.event.unknown.{part}"),
    }
}

/// The filters of the consumer of partition `n`: its own events and the hook changes.
pub fn partition_filters(prefix: &str, n: u32) -> Vec<String> {
    vec![
        format!("{prefix}.event.api.*.*.{n}"),
        format!("{prefix}.event.state.*.*.*.*.{n}"),
        format!("{prefix}.event.unknown.{n}"),
        format!("{prefix}.retry.{n}"),
        format!("{prefix}.event.api.*.*.all"),
    ]
}

/// The subjects of the events stream.
pub fn event_stream_subjects(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}.event.>"), format!("{prefix}.retry.>")]
}

/// The subject of a hook result.
pub fn result_subject(prefix: &str, hook_id: i64) -> String {
    format!("{prefix}.result.{hook_id}")
}

/// The subjects of the results stream.
pub fn result_stream_subjects(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}.result.>")]
}

/// Whether `prefix` can start a subject: tokens of `A-Z a-z 0-9 _ -` separated by single dots.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// One subject token from a key word.
fn token(word: &str) -> String {
    if word.is_empty() {
        return "-".to_string();
    }
    word.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subjects_follow_the_reference_keys() {
        let p = Partition::Of(3);
        assert_eq!(
            event_subject("one", &keys(&["EVENT API one.vm.allocate 1"]), p),
            "one.event.api.one_vm_allocate.1.3"
        );
        assert_eq!(
            event_subject(
                "one",
                &keys(&[
                    "EVENT VM 42/PENDING/LCM_INIT ",
                    "EVENT STATE VM/PENDING/LCM_INIT/42 "
                ]),
                p
            ),
            "one.event.state.VM.PENDING.LCM_INIT.42.3"
        );
        assert_eq!(
            event_subject(
                "one",
                &keys(&["EVENT HOST 3/ERROR/ ", "EVENT STATE HOST/ERROR//3 "]),
                p
            ),
            "one.event.state.HOST.ERROR.-.3.3"
        );
        assert_eq!(event_subject("x.y", &keys(&["RETRY"]), p), "x.y.retry.3");
        assert_eq!(
            event_subject("one", &keys(&["EVENT "]), Partition::Of(0)),
            "one.event.unknown.0"
        );
        // Odd characters and empty words never make a token that NATS reads differently.
        assert_eq!(
            event_subject("one", &keys(&["EVENT API a*b>c.d  "]), p),
            "one.event.api.a_b_c_d.-.3"
        );
    }

    #[test]
    fn hook_changes_go_to_every_partition() {
        for call in RELOAD_CALLS {
            let k = keys(&[&format!("EVENT API {call} 1")]);
            assert_eq!(event_partition(&k, "hook/1", 8), Partition::All);
            assert!(event_subject("one", &k, Partition::All).ends_with(".all"));
        }
        let other = keys(&["EVENT API one.hook.info 1"]);
        assert_eq!(
            event_partition(&other, "hook/1", 8),
            Partition::Of(partition_of("hook/1", 8))
        );
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        assert_eq!(partition_of("VM/42", 8), partition_of("VM/42", 8));
        assert!((0..1000).all(|i| partition_of(&format!("VM/{i}"), 8) < 8));
        assert_eq!(partition_of("anything", 1), 0);
        assert_eq!(partition_of("anything", 0), 0);
        // Spread: 1,000 VMs over 8 partitions put at least 80 on each.
        let mut counts = [0; 8];
        for i in 0..1000 {
            counts[partition_of(&format!("VM/{i}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c >= 80), "{counts:?}");
    }

    #[test]
    fn the_partition_is_read_back_from_a_subject() {
        assert_eq!(
            Partition::from_subject("one.event.api.x.1.7"),
            Some(Partition::Of(7))
        );
        assert_eq!(
            Partition::from_subject("one.event.api.x.1.all"),
            Some(Partition::All)
        );
        assert_eq!(Partition::from_subject("one.event.api.x.1.z"), None);
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(valid_prefix("one"));
        assert!(valid_prefix("site-a.one_2"));
        for bad in ["", "a..b", ".a", "a.", "a b", "a*", "a>", "a.*"] {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
    }
}
