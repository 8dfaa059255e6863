//! Test fixture for the cloud and event tests: a fake HM_MAD driver (`py/cloud_fake_driver.py`)
//! that records every line oned-lite sends it and sends back whatever a test asks, plus helpers
//! to decode what it received. Used together with `api_common` (the front-end itself).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use one_client::{Client, ClientError, Value};
use one_proto::encoding::b64_decode_strict;
use one_proto::event::{HookMessage, ObjectKind, StateEvent};

/// Every simulated delay zero: each transient state still is its own stored step and event.
pub const ZERO_SIM: &str = "SIM = [ PROLOG_DELAY_MS = 0, BOOT_DELAY_MS = 0, SHUTDOWN_DELAY_MS = 0, \
     SAVE_DELAY_MS = 0, EPILOG_DELAY_MS = 0, SCHED_DELAY_MS = 0, MONITOR_DELAY_MS = 0, \
     REBOOT_DELAY_MS = 0, IMAGE_DELAY_MS = 0 ]\n";

/// How long a test waits for something that must happen; only a bound against hanging.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `f` every 20 ms until it returns `Some`, failing the test with `what` after
/// [`PATIENCE`].
pub fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One line of the driver's record: which driver process, and what it got (or `START`,
/// `EXIT <code>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub pid: u32,
    pub text: String,
}

/// The fake driver's working directory.
pub struct FakeDriver {
    pub dir: PathBuf,
}

impl FakeDriver {
    pub fn new(base: &Path) -> FakeDriver {
        let dir = base.join("driver");
        std::fs::create_dir_all(&dir).unwrap();
        FakeDriver { dir }
    }

    /// oned.conf text running this driver, followed by `extra`.
    pub fn conf(&self, extra: &str) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/cloud_fake_driver.py");
        format!(
            "HM_MAD = [ EXECUTABLE = \"{}\", ARGUMENTS = \"{} --dir {}\" ]\nHOOK_LOG_CONF = [ LOG_RETENTION = 20 ]\n{extra}",
            crate::api_common::python().display(),
            script.display(),
            self.dir.display()
        )
    }

    pub fn lines(&self) -> Vec<Line> {
        let mut text = std::fs::read_to_string(self.dir.join("record")).unwrap_or_default();
        // The driver may be writing its last line right now: only whole lines count.
        text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
        text.lines()
            .filter_map(|l| {
                let (pid, rest) = l.split_once(' ')?;
                Some(Line {
                    pid: pid.parse().ok()?,
                    text: rest.to_string(),
                })
            })
            .collect()
    }

    /// Waits until `pred` holds for the record; returns it.
    pub fn wait(&self, what: &str, pred: impl Fn(&[Line]) -> bool) -> Vec<Line> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let lines = self.lines();
            if pred(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; the driver recorded:\n{}",
                lines
                    .iter()
                    .map(|l| format!("{} {}", l.pid, l.text))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn control(&self, command: &str) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("control"))
            .unwrap();
        writeln!(f, "{command}").unwrap();
    }

    /// Makes the running driver write `line` to oned-lite.
    pub fn send(&self, line: &str) {
        self.control(&format!("SEND {line}"));
    }

    /// Makes the running driver stop reading its stdin (`true`) or read it again.
    pub fn hold(&self, on: bool) {
        self.control(if on { "HOLD" } else { "READ" });
    }

    /// Makes the running driver exit with `code`.
    pub fn crash(&self, code: i32) {
        self.control(&format!("EXIT {code}"));
    }

    /// While refusing, every start of the driver exits at once without answering INIT.
    pub fn refuse(&self, on: bool) {
        let flag = self.dir.join("refuse");
        if on {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// While set, the driver answers INIT with a failure.
    pub fn fail_init(&self, on: bool) {
        let flag = self.dir.join("init_failure");
        if on {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// The pids of the driver processes that answered INIT successfully, in start order.
    pub fn initialized(&self) -> Vec<u32> {
        self.lines()
            .iter()
            .filter(|l| l.text == "ANSWERED INIT SUCCESS")
            .map(|l| l.pid)
            .collect()
    }

    /// Every event received (EXECUTE lines), decoded, with the receiving pid.
    pub fn events(&self) -> Vec<(u32, HookMessage)> {
        self.lines()
            .iter()
            .filter_map(|l| {
                let mut words = l.text.split_whitespace();
                if words.next()? != "EXECUTE" {
                    return None;
                }
                let _id = words.next()?;
                Some((l.pid, decode(words.next()?)))
            })
            .collect()
    }

    /// The STATE events received, in order.
    pub fn state_events(&self) -> Vec<StateEvent> {
        self.events()
            .into_iter()
            .filter_map(|(_, m)| match m {
                HookMessage::State(s) => Some(s),
                HookMessage::Api(_) => None,
            })
            .collect()
    }

    /// `(STATE, LCM_STATE)` of the STATE events of one object, in order (LCM "" for non-VMs).
    pub fn states_of(&self, object: ObjectKind, id: i64) -> Vec<(String, String)> {
        self.state_events()
            .into_iter()
            .filter(|e| e.object == object && e.resource_id == id)
            .map(|e| (e.state, e.lcm_state.unwrap_or_default()))
            .collect()
    }

    /// Waits until the driver received at least `n` STATE events of an object; returns their
    /// `(STATE, LCM_STATE)` pairs.
    pub fn wait_count(&self, object: ObjectKind, id: i64, n: usize) -> Vec<(String, String)> {
        wait_until(&format!("{n} events of {} {id}", object.name()), || {
            let states = self.states_of(object, id);
            (states.len() >= n).then_some(states)
        })
    }

    /// Waits until the driver received the STATE event `(state, lcm)` of an object; returns
    /// the object's events.
    pub fn wait_state(
        &self,
        object: ObjectKind,
        id: i64,
        state: &str,
        lcm: &str,
    ) -> Vec<StateEvent> {
        let what = format!("{} {id} {state}/{lcm}", object.name());
        wait_until(&what, || {
            let events: Vec<StateEvent> = self
                .state_events()
                .into_iter()
                .filter(|e| e.object == object && e.resource_id == id)
                .collect();
            events
                .iter()
                .any(|e| e.state == state && e.lcm_state.as_deref().unwrap_or("") == lcm)
                .then_some(events)
        })
    }
}

/// Decodes the base64 payload of an EXECUTE line.
pub fn decode(b64: &str) -> HookMessage {
    let xml = String::from_utf8(b64_decode_strict(b64).expect("strict base64")).expect("UTF-8");
    HookMessage::parse(&xml).unwrap_or_else(|e| panic!("not a HOOK_MESSAGE ({e}): {xml}"))
}

/// Pairs for comparisons: `[("PENDING", "LCM_INIT"), …]`.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub fn int(v: Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an int: {v:?}"))
}

pub fn text(v: Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v:?}"))
        .to_string()
}

/// The text of the first `<name>` element of `xml` (no nesting awareness needed here).
pub fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// The text of the `<name>` element inside the last `<HISTORY>` record.
pub fn last_history(xml: &str, name: &str) -> Option<String> {
    let start = xml.rfind("<HISTORY>")?;
    element(&xml[start..], name).map(str::to_string)
}

/// Calls `method` and expects a failure array; returns `(code, message)`.
pub fn failure(c: &Client, method: &str, params: Vec<Value>) -> (i32, String) {
    match c.call(method, params) {
        Err(ClientError::Api { code, message }) => (code, message),
        other => panic!("{method}: expected a failure, got {other:?}"),
    }
}

/// A host that reached MONITORED.
pub fn monitored_host(c: &Client, name: &str) -> i64 {
    let id = int(c
        .call(
            "one.host.allocate",
            vec![name.into(), "kvm".into(), "kvm".into(), (-1).into()],
        )
        .unwrap());
    wait_until(&format!("host {name} MONITORED"), || {
        let xml = text(c.call("one.host.info", vec![id.into()]).unwrap());
        (element(&xml, "STATE") == Some("2")).then_some(())
    });
    id
}

/// `(STATE, LCM_STATE)` numbers of a VM as `one.vm.info` shows them.
pub fn vm_state(c: &Client, id: i64) -> (i64, i64) {
    let xml = text(c.call("one.vm.info", vec![id.into()]).unwrap());
    let n = |name| {
        element(&xml, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    };
    (n("STATE"), n("LCM_STATE"))
}

/// Waits until a VM shows `(state, lcm)` in `one.vm.info`.
pub fn wait_vm(c: &Client, id: i64, state: i64, lcm: i64) {
    wait_until(&format!("VM {id} in {state}/{lcm}"), || {
        (vm_state(c, id) == (state, lcm)).then_some(())
    });
}
