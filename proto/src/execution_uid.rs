//! The form of an execution uid (ARCHITECTURE.md "Execution uid").
//!
//! `<origin>-<event>-<hook id>-<tag>`:
//! - `origin` names who planned the execution (a HEM's state DB instance and start count, or the
//!   events stream in the distributed mode); it may hold `-` itself;
//! - `event` is the sequence number of the event the execution belongs to, or `n<count>` for an
//!   event that came without one (a driver run with `--no-sequence`);
//! - `tag` is a keyed hash of everything before it, [`TAG_HEX`] hex digits, made with a secret
//!   that never leaves the HEMs. Without the secret the uid of a coming execution cannot be
//!   predicted, so a forged result cannot take a genuine one's uid and have the genuine result
//!   dropped as its duplicate.
//!
//! The driver reads the claim (event and hook) to refuse results for events it never published;
//! it cannot check the tag, which only the HEMs can.

/// Hex digits of the tag: 96 bits.
pub const TAG_HEX: usize = 24;

/// The event an execution uid names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventRef {
    /// The journal sequence number of the event.
    Seq(u64),
    /// An event without a sequence number, counted by the HEM.
    Unsequenced(u64),
}

/// What an execution uid says about its execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub event: EventRef,
    pub hook_id: i64,
}

/// The text a uid's tag covers: `<origin>-<event>-<hook id>`.
pub fn tagged_text(origin: &str, event: EventRef, hook_id: i64) -> String {
    match event {
        EventRef::Seq(seq) => format!("{origin}-{seq}-{hook_id}"),
        EventRef::Unsequenced(n) => format!("{origin}-n{n}-{hook_id}"),
    }
}

/// The uid: the tagged text and its tag (`tag` is cut or must be [`TAG_HEX`] hex digits).
pub fn with_tag(tagged_text: &str, tag: &str) -> String {
    let tag = tag.get(..TAG_HEX).unwrap_or(tag);
    format!("{tagged_text}-{tag}")
}

/// Reads the claim of a uid of this form; `None` for any other text (uids of older HEMs, or
/// of other software).
pub fn claim(uid: &str) -> Option<Claim> {
    let mut words = uid.rsplitn(4, '-');
    let tag = words.next()?;
    let hook = words.next()?;
    let event = words.next()?;
    let origin = words.next()?;
    if origin.is_empty()
        || tag.len() != TAG_HEX
        || !tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let hook_id = number(hook)?;
    let event = match event.strip_prefix('n') {
        Some(count) => EventRef::Unsequenced(number(count)?),
        None => EventRef::Seq(number(event)?),
    };
    Some(Claim {
        event,
        hook_id: i64::try_from(hook_id).ok()?,
    })
}

/// Plain decimal digits, no sign, no leading zero (except `0` itself).
fn number(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "0123456789abcdef01234567";

    #[test]
    fn a_uid_gives_back_its_claim() {
        let uid = with_tag(&tagged_text("3fa2c1e0b9d4-7r2", EventRef::Seq(41), 12), TAG);
        assert_eq!(uid, format!("3fa2c1e0b9d4-7r2-41-12-{TAG}"));
        assert_eq!(
            claim(&uid),
            Some(Claim {
                event: EventRef::Seq(41),
                hook_id: 12
            })
        );
        let uid = with_tag(&tagged_text("a-b", EventRef::Unsequenced(3), 0), TAG);
        assert_eq!(
            claim(&uid),
            Some(Claim {
                event: EventRef::Unsequenced(3),
                hook_id: 0
            })
        );
    }

    #[test]
    fn a_longer_tag_is_cut() {
        let uid = with_tag("o-1-2", &format!("{TAG}ffff"));
        assert_eq!(uid, format!("o-1-2-{TAG}"));
    }

    #[test]
    fn other_texts_claim_nothing() {
        for uid in [
            "",
            "abc",
            "3fa2c1e0b9d4-7-41-12",             // the form without a tag
            "-41-12-0123456789abcdef01234567",  // no origin
            "o-41-12-0123456789ABCDEF01234567", // upper-case tag
            "o-41-12-0123456789abcdef0123456",  // short tag
            "o-041-12-0123456789abcdef01234567",
            "o-41-+12-0123456789abcdef01234567",
            "o-41-99999999999999999999-0123456789abcdef01234567",
            "o-n-12-0123456789abcdef01234567",
            "o-41--0123456789abcdef01234567",
        ] {
            assert_eq!(claim(uid), None, "{uid:?}");
        }
    }
}
