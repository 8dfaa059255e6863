//! Which HEMs are alive, and which partitions each should hold.
//!
//! Every HEM renews its heartbeat key in the bucket a few times per take-over time; the key
//! expires with the HEM. Every HEM watches the heartbeat keys, so all of them see the same
//! members (give or take the propagation of one change) and compute the same assignment of
//! partitions ([`assigned`]).

use std::collections::{BTreeMap, BTreeSet};
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
        // The view is published once the watch has replayed every current key, and then at
        // every change; a watch opened again rebuilds it in private first, so the others never
        // see a partial view (in which this HEM would take every partition, then give them back).
        let mut members = View::new();
        let mut complete = false;
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
            if entry.seen_current || entry.delta == 0 {
                complete = true;
            }
            if complete && (changed || *view.borrow() != members) {
                view.send_replace(members.clone());
            }
        }
    }
}

/// The partitions of `0..partitions` that `member` should hold among `view`: rendezvous hashing
/// with bounded loads. Each partition, in order, goes to the member with the highest hash of
/// (member, partition) that has room left, every member's share being the partitions divided
/// evenly (some one more), so loads differ by one at most and a member that comes or goes moves
/// few partitions.
pub fn assigned(member: &str, view: &View, partitions: u32) -> BTreeSet<u32> {
    if view.is_empty() {
        return BTreeSet::new();
    }
    // Every member holds `floor` partitions, `extra` of them one more.
    let members = view.len();
    let floor = partitions as usize / members;
    let extra = partitions as usize % members;
    let mut load: BTreeMap<&str, usize> = view.iter().map(|m| (m.as_str(), 0)).collect();
    let mut above_floor = 0;
    let mut mine = BTreeSet::new();
    for p in 0..partitions {
        let room = |l: usize| l < floor || (l == floor && above_floor < extra);
        let owner = view
            .iter()
            .filter(|m| load.get(m.as_str()).is_some_and(|&l| room(l)))
            .max_by_key(|m| (score(m, p), m.as_str()));
        let Some(owner) = owner else { continue };
        if let Some(l) = load.get_mut(owner.as_str()) {
            *l += 1;
            if *l == floor + 1 {
                above_floor += 1;
            }
        }
        if owner == member {
            mine.insert(p);
        }
    }
    mine
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
    fn loads_are_even_and_changes_move_few_partitions() {
        for members in 1..=7usize {
            let names: Vec<String> = (0..members).map(|i| format!("hem-{i}")).collect();
            let v: View = names.iter().cloned().collect();
            for partitions in [1u32, 8, 16, 64] {
                let loads: Vec<usize> = names
                    .iter()
                    .map(|m| assigned(m, &v, partitions).len())
                    .collect();
                let min = loads.iter().min().copied().unwrap_or(0);
                let max = loads.iter().max().copied().unwrap_or(0);
                assert_eq!(loads.iter().sum::<usize>(), partitions as usize);
                assert!(
                    max - min <= 1,
                    "{members} members, {partitions} partitions: {loads:?}"
                );
            }
        }
        // A member leaving: the others keep most of what they held.
        let before = view(&["a", "b", "c"]);
        let after = view(&["a", "b"]);
        let kept: usize = ["a", "b"]
            .iter()
            .map(|m| {
                assigned(m, &before, 64)
                    .intersection(&assigned(m, &after, 64))
                    .count()
            })
            .sum();
        let held: usize = ["a", "b"]
            .iter()
            .map(|m| assigned(m, &before, 64).len())
            .sum();
        assert!(kept * 10 >= held * 8, "kept {kept} of {held}");
    }
}
