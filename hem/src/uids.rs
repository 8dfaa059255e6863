//! Execution uids (`one_proto::execution_uid` has their form): who planned the execution, its
//! event and hook, and a tag keyed with a secret of the HEMs, so that nobody else can tell the
//! uid of an execution before its result is stored.

use std::fmt;

use one_proto::execution_uid::{EventRef, tagged_text, with_tag};
use sha2::{Digest, Sha256};

use crate::matcher::Uids;

/// The secret execution uids are tagged with.
#[derive(Clone, PartialEq, Eq)]
pub struct UidKey([u8; 32]);

impl UidKey {
    /// A new random key.
    pub fn generate() -> UidKey {
        UidKey(rand::random())
    }

    /// The key stored as hex; `None` unless exactly 64 hex digits.
    pub fn from_hex(text: &str) -> Option<UidKey> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(UidKey(bytes.try_into().ok()?))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The uid of the execution of `hook_id` for `event`, planned by `origin`.
    pub fn uid(&self, origin: &str, event: EventRef, hook_id: i64) -> String {
        let text = tagged_text(origin, event, hook_id);
        with_tag(&text, &hex::encode(hmac_sha256(&self.0, text.as_bytes())))
    }
}

/// HMAC-SHA256 (RFC 2104) for keys up to the block size, which ours are. Written out because the
/// `hmac` crate in the workspace pairs with another major version of `sha2`.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut inner_pad = [0x36u8; BLOCK];
    let mut outer_pad = [0x5cu8; BLOCK];
    for (i, k) in key.iter().enumerate() {
        inner_pad[i] ^= k;
        outer_pad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

impl fmt::Debug for UidKey {
    // The key must not reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UidKey(..)")
    }
}

/// Execution uids of the single-HEM mode: the state DB's instance and start count, the journal
/// epoch, and the event's sequence number (a counter without one).
pub struct RunUids {
    key: UidKey,
    /// `<instance>-<boot>`: unique to this start of this state DB.
    run: String,
    /// Bumped when the journal restarts numbering, so uids stay unique within this run.
    epoch: u32,
    counter: u64,
}

impl RunUids {
    pub fn new(key: UidKey, instance: &str, boot: u64) -> RunUids {
        RunUids {
            key,
            run: format!("{instance}-{boot}"),
            epoch: 0,
            counter: 0,
        }
    }

    /// The journal restarted its numbering: sequence numbers seen from now on may repeat.
    pub fn next_epoch(&mut self) {
        self.epoch += 1;
    }
}

impl Uids for RunUids {
    fn uid(&mut self, seq: u64, hook_id: i64) -> String {
        let origin = if self.epoch > 0 {
            format!("{}r{}", self.run, self.epoch)
        } else {
            self.run.clone()
        };
        let event = if seq > 0 {
            EventRef::Seq(seq)
        } else {
            self.counter += 1;
            EventRef::Unsequenced(self.counter)
        };
        self.key.uid(&origin, event, hook_id)
    }
}

/// Execution uids of the distributed mode: the same for every HEM that handles the event (the
/// start markers are keyed by them), so the key is shared through the HEMs' bucket.
pub struct StreamUids {
    pub key: UidKey,
    /// The events stream's tag (its name and creation time).
    pub tag: String,
}

impl Uids for StreamUids {
    fn uid(&mut self, seq: u64, hook_id: i64) -> String {
        self.key.uid(&self.tag, EventRef::Seq(seq), hook_id)
    }
}

#[cfg(test)]
mod tests {
    use one_proto::execution_uid::{Claim, claim};

    use super::*;

    #[test]
    fn uids_are_stable_under_one_key_and_unlike_under_another() {
        let key = UidKey::generate();
        let mut a = RunUids::new(key.clone(), "3fa2c1e0b9d4", 7);
        let mut b = RunUids::new(key, "3fa2c1e0b9d4", 7);
        let mut other = RunUids::new(UidKey::generate(), "3fa2c1e0b9d4", 7);
        let uid = a.uid(41, 12);
        assert_eq!(uid, b.uid(41, 12));
        assert_ne!(uid, other.uid(41, 12));
        assert!(uid.starts_with("3fa2c1e0b9d4-7-41-12-"), "{uid}");
        assert_eq!(
            claim(&uid),
            Some(Claim {
                event: EventRef::Seq(41),
                hook_id: 12
            })
        );
    }

    #[test]
    fn epochs_and_unsequenced_events_get_uids_of_their_own() {
        let mut uids = RunUids::new(UidKey::generate(), "i", 1);
        let first = uids.uid(5, 1);
        uids.next_epoch();
        let again = uids.uid(5, 1);
        assert_ne!(first, again);
        assert!(again.starts_with("i-1r1-5-1-"), "{again}");
        let (n1, n2) = (uids.uid(0, 1), uids.uid(0, 1));
        assert_ne!(n1, n2);
        assert_eq!(claim(&n2).map(|c| c.event), Some(EventRef::Unsequenced(2)));
    }

    #[test]
    fn the_tag_is_hmac_sha256() {
        // RFC 4231, test case 2 (the 4-byte key "Jefe" padded with zeros is the same HMAC key).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex::encode(hmac_sha256(&key, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn keys_round_trip_through_hex_and_bad_text_is_refused() {
        let key = UidKey::generate();
        assert_eq!(UidKey::from_hex(&key.to_hex()), Some(key.clone()));
        assert_eq!(UidKey::from_hex("abc"), None);
        assert_eq!(UidKey::from_hex(&"zz".repeat(32)), None);
        assert_eq!(UidKey::from_hex(&"ab".repeat(31)), None);
        assert_eq!(format!("{key:?}"), "UidKey(..)");
    }
}
