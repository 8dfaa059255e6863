//! Results that cannot be genuine, refused before they reach the journal.
//!
//! A result from one of our HEMs names its event and hook in its `EXECUTION_UID`
//! (`one_proto::execution_uid`). A result naming an event the journal never published, or a hook
//! other than the one its frame is for, was not produced by a HEM that saw that event: it is
//! answered `ERR` and never stored. The reference HEM sends no uid; its results are taken as
//! they are unless `--require-execution-uid` is given. Only CURVE tells who sent a result; these
//! checks refuse what no HEM could have sent.

use one_proto::execution_uid::{EventRef, claim};

use crate::journal::JournalResult;

/// How results are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResultChecks {
    /// Refuse results without an execution uid of our form.
    pub require_uid: bool,
}

impl ResultChecks {
    /// Why `result` is refused, given `head`, the newest event sequence the journal holds;
    /// `None` when it may be stored.
    pub fn refusal(&self, result: &JournalResult, head: u64) -> Option<String> {
        let Some(uid) = &result.uid else {
            return self.require_uid.then(|| {
                "result without an EXECUTION_UID refused (--require-execution-uid)".into()
            });
        };
        let Some(claimed) = claim(uid) else {
            return self.require_uid.then(|| {
                format!(
                    "result refused: EXECUTION_UID {uid:?} is not of the form \
                     <origin>-<event>-<hook>-<tag> (--require-execution-uid)"
                )
            });
        };
        if claimed.hook_id != result.hook_id {
            return Some(format!(
                "result for hook {} refused: its EXECUTION_UID names hook {}",
                result.hook_id, claimed.hook_id
            ));
        }
        match claimed.event {
            EventRef::Seq(seq) if seq > head => Some(format!(
                "result refused: its EXECUTION_UID names event {seq}, which was never published \
                 (the newest is {head})"
            )),
            EventRef::Seq(_) | EventRef::Unsequenced(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "0123456789abcdef01234567";

    fn result(hook_id: i64, uid: Option<String>) -> JournalResult {
        JournalResult {
            id: 0,
            hook_id,
            rc: 0,
            body: String::new(),
            decoded: None,
            uid,
            duplicate: false,
        }
    }

    #[test]
    fn results_of_published_events_and_their_own_hook_pass() {
        let checks = ResultChecks::default();
        for uid in [format!("i-1-10-3-{TAG}"), format!("i-1-n4-3-{TAG}")] {
            assert_eq!(checks.refusal(&result(3, Some(uid)), 10), None);
        }
        // Results of the reference HEM carry no uid.
        assert_eq!(checks.refusal(&result(3, None), 10), None);
        assert_eq!(checks.refusal(&result(3, Some("abc".into())), 10), None);
    }

    #[test]
    fn events_never_published_and_other_hooks_are_refused() {
        let checks = ResultChecks::default();
        let future = checks.refusal(&result(3, Some(format!("i-1-11-3-{TAG}"))), 10);
        assert!(future.is_some_and(|r| r.contains("event 11, which was never published")));
        let other = checks.refusal(&result(4, Some(format!("i-1-9-3-{TAG}"))), 10);
        assert!(other.is_some_and(|r| r.contains("names hook 3")));
    }

    #[test]
    fn a_required_uid_must_be_there_and_of_our_form() {
        let checks = ResultChecks { require_uid: true };
        assert!(checks.refusal(&result(3, None), 10).is_some());
        assert!(checks.refusal(&result(3, Some("abc".into())), 10).is_some());
        assert_eq!(
            checks.refusal(&result(3, Some(format!("i-1-10-3-{TAG}"))), 10),
            None
        );
    }
}
