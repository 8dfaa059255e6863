//! Which HEMs are alive, and which partitions each should hold.
//!
//! Every HEM renews its heartbeat key in the bucket a few times per take-over time; the key
//! expires with the HEM. Every HEM watches the heartbeat keys, so all of them see the same
//! members (give or take the propagation of one change) and compute the same assignment of
//! partitions with rendezvous hashing: a partition goes to the member with the highest hash of
//! (member, partition), so a member that comes or goes moves only its own share.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::markers::Markers;

/// The members, by name, as seen now.
pub type View = BTreeSet<String>;

/// Renews this member's heartbeat every third of `takeover` until `stop` changes.
pub async fn heartbeat(
    markers: Markers,
    member: String,
    takeover: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let value = Bytes::from(format!(
        "pid {} host {}",
        std::process::id(),
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
    ));
    let period = takeover / 3;
    let mut failing = false;
    loop {
        match markers.heartbeat(&member, value.clone(), takeover).await {
            Ok(()) => {
                if failing {
                    tracing::info!("heartbeat renewed again");
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot renew this HEM's heartbeat; others take its partitions over once it expires");
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => break,
        }
    }
    if let Err(e) = markers.leave(&member).await {
        tracing::debug!(error = %e, "cannot remove the heartbeat; it expires by itself");
    }
}

/// Follows the heartbeat keys and publishes the members on `view` until `stop` changes.
/// A broken watch is opened again.
pub async fn watch_members(
    markers: Markers,
    view: watch::Sender<View>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        let watch = markers.store().watch_with_history("m.>").await;
        let mut watch = match watch {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the members; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        delay = Duration::from_millis(100);
        let mut members = View::new();
        loop {
            let entry = tokio::select! {
                entry = watch.next() => entry,
                _ = stop.changed() => return,
            };
            let Some(entry) = entry else { break };
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "member watch failed; watching again");
                    break;
                }
            };
            let Some(name) = entry.key.strip_prefix("m.") else {
                continue;
            };
            let changed = match entry.operation {
                Operation::Put => members.insert(name.to_string()),
                Operation::Delete | Operation::Purge => members.remove(name),
            };
            if changed {
                view.send_replace(members.clone());
            }
        }
    }
}

/// The partitions of `0..partitions` that rendezvous hashing gives `member` among `view`.
pub fn assigned(member: &str, view: &View, partitions: u32) -> BTreeSet<u32> {
    (0..partitions)
        .filter(|&p| {
            view.iter()
                .max_by_key(|m| (score(m, p), m.as_str()))
                .is_some_and(|owner| owner == member)
        })
        .collect()
}

/// FNV-1a 64 of `member/partition`.
fn score(member: &str, partition: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(partition.to_le_bytes())
    {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(names: &[&str]) -> View {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_partition_has_exactly_one_holder() {
        let v = view(&["a-1", "b-2", "c-3"]);
        let mut all = BTreeSet::new();
        let mut total = 0;
        for m in &v {
            let mine = assigned(m, &v, 16);
            total += mine.len();
            all.extend(mine);
        }
        assert_eq!(total, 16);
        assert_eq!(all, (0..16).collect());
        assert!(assigned("stranger", &v, 16).is_empty());
        assert_eq!(assigned("a-1", &view(&["a-1"]), 4), (0..4).collect());
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_partitions() {
        let before = view(&["a", "b", "c"]);
        let after = view(&["a", "b"]);
        for m in ["a", "b"] {
            let kept = assigned(m, &before, 64);
            assert!(
                kept.is_subset(&assigned(m, &after, 64)),
                "{m} lost partitions"
            );
        }
        // 64 partitions over 3 members: each holds some.
        for m in ["a", "b", "c"] {
            assert!(assigned(m, &before, 64).len() >= 10);
        }
    }
}
