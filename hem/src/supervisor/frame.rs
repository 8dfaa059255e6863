//! The frames between the HEM and its hook supervisor over their Unix socket: a big-endian
//! `u32` length, then the body: one tag byte and the fields in order. Byte strings carry a `u32`
//! length, numbers are big-endian, an optional field starts with a 0/1 byte. The distributed
//! mode's additions (the bus in `Hello`, the record context in `Spawn`) are a frame's last
//! field and present only when set, so the single-HEM mode's frames are those an earlier
//! supervisor reads. Decoding never panics: a short, over-long or malformed frame is an error
//! naming what was wrong.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::execution::ResultContext;
use crate::executor::ExecOutcome;

/// Longest frame the supervisor reads from the HEM (a spawn's stdin holds the arguments of an
/// ARGUMENTS_STDIN hook, a whole VM template at most).
pub const MAX_TO_SUPERVISOR: usize = 64 << 20;

/// Room in a frame from the supervisor beyond the two captured outputs.
pub const OUTCOME_OVERHEAD: usize = 64 << 10;

/// What the HEM sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToSupervisor {
    /// First frame of a connection: the variables every hook spawned for it gets, and, from
    /// a HEM of the distributed mode, how to reach the bus to finish its executions if it dies.
    Hello {
        env: Vec<(String, Vec<u8>)>,
        bus: Option<BusContext>,
    },
    /// Run this execution, or, when the supervisor already has its uid, report that one.
    Spawn(SpawnRequest),
    /// These outcomes are in the HEM's state DB: the supervisor forgets them.
    Taken { uids: Vec<String> },
    /// The HEM stops cleanly: kill what still runs and exit once it is gone.
    Bye,
}

/// One execution to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpawnRequest {
    pub uid: String,
    pub argv: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub output_cap: usize,
    /// From a HEM of the distributed mode: what the execution's record holds besides the
    /// outcome, so that the supervisor can report it when the HEM cannot.
    pub record: Option<ResultContext>,
}

/// What the supervisor needs to finish a dead distributed-mode HEM's executions: the HEM's
/// own connection settings and names (ARCHITECTURE.md "Distributed mode").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusContext {
    pub settings: one_bus::Settings,
    pub bucket: String,
    /// The subject prefix of results.
    pub prefix: String,
    pub replicas: usize,
    /// The take-over time: markers are renewed every quarter of it.
    pub takeover: Duration,
    pub marker_ttl: Duration,
    /// The HEM's member name, the owner of its start markers.
    pub member: String,
}

/// What the supervisor sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromSupervisor {
    /// The answer to `Hello`: what it runs and what it holds untaken, by uid.
    Welcome {
        pid: u32,
        running: Vec<String>,
        finished: Vec<String>,
    },
    /// An execution ended.
    Finished { uid: String, outcome: ExecOutcome },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is longer than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("frame ends inside its {0}")]
    Truncated(&'static str),
    #[error("unknown frame tag {0}")]
    UnknownTag(u8),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("{0} has the flag byte {1}, not 0 or 1")]
    BadFlag(&'static str, u8),
    #[error("{0} bytes left over after the frame's last field")]
    Trailing(usize),
    #[error("empty frame")]
    Empty,
    #[error("cannot read the frame: {0}")]
    Io(String),
}

const HELLO: u8 = 1;
const SPAWN: u8 = 2;
const TAKEN: u8 = 3;
const BYE: u8 = 4;
const WELCOME: u8 = 0x81;
const FINISHED: u8 = 0x82;

const STDOUT_TRUNCATED: u8 = 1;
const STDERR_TRUNCATED: u8 = 2;
const TIMED_OUT: u8 = 4;

impl ToSupervisor {
    /// The whole frame, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            ToSupervisor::Hello { env, bus } => {
                w.u8(HELLO);
                w.u32(env.len() as u32);
                for (name, value) in env {
                    w.bytes(name.as_bytes());
                    w.bytes(value);
                }
                if let Some(bus) = bus {
                    w.bus(bus);
                }
            }
            ToSupervisor::Spawn(req) => {
                w.u8(SPAWN);
                w.bytes(req.uid.as_bytes());
                w.strings(&req.argv);
                w.opt_bytes(req.stdin.as_deref());
                w.opt_u64(req.timeout.map(millis));
                w.u64(millis(req.kill_grace));
                w.u64(req.output_cap as u64);
                if let Some(record) = &req.record {
                    w.record(record);
                }
            }
            ToSupervisor::Taken { uids } => {
                w.u8(TAKEN);
                w.strings(uids);
            }
            ToSupervisor::Bye => w.u8(BYE),
        }
        w.finish()
    }

    /// Reads a frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<ToSupervisor, FrameError> {
        let mut r = Reader::new(body);
        let frame = match r.u8("tag")? {
            HELLO => {
                let n = r.count("environment count")?;
                let mut env = Vec::with_capacity(n);
                for _ in 0..n {
                    env.push((
                        r.string("variable name")?,
                        r.bytes("variable value")?.to_vec(),
                    ));
                }
                let bus = if r.at_end() { None } else { Some(r.bus()?) };
                ToSupervisor::Hello { env, bus }
            }
            SPAWN => ToSupervisor::Spawn(SpawnRequest {
                uid: r.string("uid")?,
                argv: r.strings("argv")?,
                stdin: r.opt_bytes("stdin")?.map(<[u8]>::to_vec),
                timeout: r.opt_u64("timeout")?.map(Duration::from_millis),
                kill_grace: Duration::from_millis(r.u64("kill grace")?),
                output_cap: usize::try_from(r.u64("output cap")?).unwrap_or(usize::MAX),
                record: if r.at_end() { None } else { Some(r.record()?) },
            }),
            TAKEN => ToSupervisor::Taken {
                uids: r.strings("uids")?,
            },
            BYE => ToSupervisor::Bye,
            other => return Err(FrameError::UnknownTag(other)),
        };
        r.end()?;
        Ok(frame)
    }
}

impl FromSupervisor {
    /// The whole frame, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            FromSupervisor::Welcome {
                pid,
                running,
                finished,
            } => {
                w.u8(WELCOME);
                w.u32(*pid);
                w.strings(running);
                w.strings(finished);
            }
            FromSupervisor::Finished { uid, outcome } => {
                w.u8(FINISHED);
                w.bytes(uid.as_bytes());
                w.u32(outcome.code as u32);
                w.opt_u64(outcome.signal.map(|s| s as u32 as u64));
                let mut flags = 0;
                for (set, bit) in [
                    (outcome.stdout_truncated, STDOUT_TRUNCATED),
                    (outcome.stderr_truncated, STDERR_TRUNCATED),
                    (outcome.timed_out, TIMED_OUT),
                ] {
                    if set {
                        flags |= bit;
                    }
                }
                w.u8(flags);
                w.bytes(&outcome.stdout);
                w.bytes(&outcome.stderr);
                w.opt_bytes(outcome.start_error.as_deref().map(str::as_bytes));
                let since_epoch = outcome
                    .started
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                w.u64(u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX));
                w.u64(u64::try_from(outcome.duration.as_micros()).unwrap_or(u64::MAX));
            }
        }
        w.finish()
    }

    /// Reads a frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<FromSupervisor, FrameError> {
        let mut r = Reader::new(body);
        let frame = match r.u8("tag")? {
            WELCOME => FromSupervisor::Welcome {
                pid: r.u32("pid")?,
                running: r.strings("running uids")?,
                finished: r.strings("finished uids")?,
            },
            FINISHED => {
                let uid = r.string("uid")?;
                let code = r.u32("exit code")? as i32;
                let signal = r.opt_u64("signal")?.map(|s| s as u32 as i32);
                let flags = r.u8("flags")?;
                let stdout = r.bytes("stdout")?.to_vec();
                let stderr = r.bytes("stderr")?.to_vec();
                let start_error = match r.opt_bytes("start error")? {
                    Some(b) => Some(
                        String::from_utf8(b.to_vec())
                            .map_err(|_| FrameError::NotUtf8("start error"))?,
                    ),
                    None => None,
                };
                let started = UNIX_EPOCH + Duration::from_micros(r.u64("start time")?);
                let duration = Duration::from_micros(r.u64("duration")?);
                FromSupervisor::Finished {
                    uid,
                    outcome: ExecOutcome {
                        code,
                        signal,
                        stdout,
                        stderr,
                        stdout_truncated: flags & STDOUT_TRUNCATED != 0,
                        stderr_truncated: flags & STDERR_TRUNCATED != 0,
                        timed_out: flags & TIMED_OUT != 0,
                        start_error,
                        started,
                        duration,
                    },
                }
            }
            other => return Err(FrameError::UnknownTag(other)),
        };
        r.end()?;
        Ok(frame)
    }
}

/// Reads one frame body of at most `max` bytes; `Ok(None)` at a clean end of stream (between
/// frames). A frame over `max` is refused before any of its body is read.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match reader.read(&mut len[got..]).await {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated("length")),
            Ok(n) => got += n,
            Err(e) => return Err(FrameError::Io(e.to_string())),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLong { len, max });
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated("body"),
            _ => FrameError::Io(e.to_string()),
        })?;
    Ok(Some(body))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Writer {
        Writer(vec![0; 4])
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn strings(&mut self, list: &[String]) {
        self.u32(list.len() as u32);
        for s in list {
            self.bytes(s.as_bytes());
        }
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
            None => self.u8(0),
        }
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
            None => self.u8(0),
        }
    }
    fn path(&mut self, p: Option<&Path>) {
        self.opt_bytes(p.map(|p| p.as_os_str().as_bytes()));
    }
    fn bus(&mut self, bus: &BusContext) {
        let s = &bus.settings;
        self.strings(&s.servers);
        match &s.auth {
            one_bus::Auth::None => self.u8(0),
            one_bus::Auth::UserPassword { user, password } => {
                self.u8(1);
                self.bytes(user.as_bytes());
                self.bytes(password.as_bytes());
            }
            one_bus::Auth::Creds(path) => {
                self.u8(2);
                self.bytes(path.as_os_str().as_bytes());
            }
        }
        self.path(s.tls.ca.as_deref());
        self.path(s.tls.cert.as_deref());
        self.path(s.tls.key.as_deref());
        self.bytes(s.name.as_bytes());
        self.bytes(bus.bucket.as_bytes());
        self.bytes(bus.prefix.as_bytes());
        self.u64(bus.replicas as u64);
        self.u64(millis(bus.takeover));
        self.u64(millis(bus.marker_ttl));
        self.bytes(bus.member.as_bytes());
    }
    fn record(&mut self, r: &ResultContext) {
        self.bytes(r.uid.as_bytes());
        self.u64(r.hook_id as u64);
        self.bytes(r.arguments.as_bytes());
        self.bytes(r.command.as_bytes());
        self.opt_bytes(r.report_host.as_deref().map(str::as_bytes));
        self.u8(u8::from(r.retry));
    }
    fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&len.to_be_bytes());
        self.0
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(body: &'a [u8]) -> Reader<'a> {
        Reader { rest: body }
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FrameError> {
        if self.rest.len() < n {
            return Err(FrameError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, FrameError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, FrameError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_be_bytes(b))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, FrameError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(b))
    }
    /// A count of items, each at least 4 bytes long: a count the rest of the frame cannot
    /// hold is refused before anything is allocated for it.
    fn count(&mut self, what: &'static str) -> Result<usize, FrameError> {
        let n = self.u32(what)? as usize;
        if n > self.rest.len() / 4 {
            return Err(FrameError::Truncated(what));
        }
        Ok(n)
    }
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], FrameError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn string(&mut self, what: &'static str) -> Result<String, FrameError> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| FrameError::NotUtf8(what))
    }
    fn strings(&mut self, what: &'static str) -> Result<Vec<String>, FrameError> {
        let n = self.count(what)?;
        (0..n).map(|_| self.string(what)).collect()
    }
    fn flag(&mut self, what: &'static str) -> Result<bool, FrameError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(FrameError::BadFlag(what, other)),
        }
    }
    fn opt_bytes(&mut self, what: &'static str) -> Result<Option<&'a [u8]>, FrameError> {
        if self.flag(what)? {
            self.bytes(what).map(Some)
        } else {
            Ok(None)
        }
    }
    fn opt_u64(&mut self, what: &'static str) -> Result<Option<u64>, FrameError> {
        if self.flag(what)? {
            self.u64(what).map(Some)
        } else {
            Ok(None)
        }
    }
    fn path(&mut self, what: &'static str) -> Result<Option<PathBuf>, FrameError> {
        Ok(self
            .opt_bytes(what)?
            .map(|b| PathBuf::from(OsString::from_vec(b.to_vec()))))
    }
    fn bus(&mut self) -> Result<BusContext, FrameError> {
        let servers = self.strings("servers")?;
        let auth = match self.u8("auth")? {
            0 => one_bus::Auth::None,
            1 => one_bus::Auth::UserPassword {
                user: self.string("user")?,
                password: self.string("password")?,
            },
            2 => one_bus::Auth::Creds(PathBuf::from(OsString::from_vec(
                self.bytes("credentials file")?.to_vec(),
            ))),
            other => return Err(FrameError::BadFlag("auth", other)),
        };
        let tls = one_bus::Tls {
            ca: self.path("TLS CA")?,
            cert: self.path("TLS certificate")?,
            key: self.path("TLS key")?,
        };
        Ok(BusContext {
            settings: one_bus::Settings {
                servers,
                auth,
                tls,
                name: self.string("connection name")?,
            },
            bucket: self.string("bucket")?,
            prefix: self.string("prefix")?,
            replicas: usize::try_from(self.u64("replicas")?).unwrap_or(usize::MAX),
            takeover: Duration::from_millis(self.u64("take-over time")?),
            marker_ttl: Duration::from_millis(self.u64("marker TTL")?),
            member: self.string("member")?,
        })
    }
    fn record(&mut self) -> Result<ResultContext, FrameError> {
        Ok(ResultContext {
            uid: self.string("record uid")?,
            hook_id: self.u64("hook id")? as i64,
            arguments: self.string("arguments")?,
            command: self.string("command")?,
            report_host: match self.opt_bytes("report host")? {
                Some(b) => Some(
                    String::from_utf8(b.to_vec())
                        .map_err(|_| FrameError::NotUtf8("report host"))?,
                ),
                None => None,
            },
            retry: self.flag("retry")?,
        })
    }
    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }
    fn end(&self) -> Result<(), FrameError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(FrameError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn() -> ToSupervisor {
        ToSupervisor::Spawn(SpawnRequest {
            uid: "abc-1-7".into(),
            argv: vec!["/bin/echo".into(), "a b".into(), "".into()],
            stdin: Some(b"\0template\xff".to_vec()),
            timeout: Some(Duration::from_secs(3)),
            kill_grace: Duration::from_millis(200),
            output_cap: 1 << 20,
            record: Some(ResultContext {
                uid: "abc-1-7".into(),
                hook_id: 7,
                arguments: "a b".into(),
                command: "/bin/echo a b".into(),
                report_host: Some("host-3".into()),
                retry: true,
            }),
        })
    }

    fn bus(auth: one_bus::Auth) -> BusContext {
        BusContext {
            settings: one_bus::Settings {
                servers: vec!["nats://127.0.0.1:4222".into(), "tls://h:4223".into()],
                auth,
                tls: one_bus::Tls {
                    ca: Some("/etc/one/ca.pem".into()),
                    cert: None,
                    key: Some(PathBuf::from(OsString::from_vec(b"/k\xff".to_vec()))),
                },
                name: "onehem-server h-1".into(),
            },
            bucket: "ONE_HEM".into(),
            prefix: "one".into(),
            replicas: 3,
            takeover: Duration::from_millis(4_000),
            marker_ttl: Duration::from_secs(600),
            member: "h-1".into(),
        }
    }

    fn finished() -> FromSupervisor {
        FromSupervisor::Finished {
            uid: "abc-1-7".into(),
            outcome: ExecOutcome {
                code: -1,
                signal: Some(9),
                stdout: b"out\n".to_vec(),
                stderr: vec![0xff, 0],
                stdout_truncated: true,
                stderr_truncated: false,
                timed_out: true,
                start_error: Some("No such file or directory - /x".into()),
                started: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
                duration: Duration::from_micros(2_500_001),
            },
        }
    }

    fn body(frame: &[u8]) -> &[u8] {
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        &frame[4..]
    }

    #[test]
    fn every_frame_reads_back_as_written() {
        let to = [
            ToSupervisor::Hello {
                env: vec![("ONE_AUTH".into(), b"/x/one_auth".to_vec())],
                bus: None,
            },
            ToSupervisor::Hello {
                env: vec![],
                bus: Some(bus(one_bus::Auth::None)),
            },
            ToSupervisor::Hello {
                env: vec![],
                bus: Some(bus(one_bus::Auth::UserPassword {
                    user: "hem".into(),
                    password: "p w".into(),
                })),
            },
            ToSupervisor::Hello {
                env: vec![],
                bus: Some(bus(one_bus::Auth::Creds("/etc/one/hem.creds".into()))),
            },
            spawn(),
            ToSupervisor::Spawn(SpawnRequest {
                record: None,
                ..match spawn() {
                    ToSupervisor::Spawn(req) => req,
                    _ => unreachable!(),
                }
            }),
            ToSupervisor::Taken {
                uids: vec!["a".into(), "b".into()],
            },
            ToSupervisor::Bye,
        ];
        for f in to {
            assert_eq!(ToSupervisor::decode(body(&f.encode())).unwrap(), f);
        }
        let from = [
            FromSupervisor::Welcome {
                pid: 42,
                running: vec!["r".into()],
                finished: vec![],
            },
            finished(),
        ];
        for f in from {
            assert_eq!(FromSupervisor::decode(body(&f.encode())).unwrap(), f);
        }
    }

    #[test]
    fn every_cut_of_a_frame_is_an_error_never_a_panic() {
        let hello = ToSupervisor::Hello {
            env: vec![("A".into(), b"1".to_vec())],
            bus: Some(bus(one_bus::Auth::Creds("/c".into()))),
        };
        for frame in [spawn(), hello] {
            let s = frame.encode();
            // Where the optional last field starts, the cut is that frame without it.
            let without = match &frame {
                ToSupervisor::Spawn(req) => ToSupervisor::Spawn(SpawnRequest {
                    record: None,
                    ..req.clone()
                }),
                ToSupervisor::Hello { env, .. } => ToSupervisor::Hello {
                    env: env.clone(),
                    bus: None,
                },
                other => other.clone(),
            };
            let tail_at = body(&without.encode()).len();
            for cut in 0..body(&s).len() {
                match ToSupervisor::decode(&body(&s)[..cut]) {
                    Ok(f) => assert!(cut == tail_at && f == without, "{cut}: {f:?}"),
                    Err(e) => assert!(matches!(e, FrameError::Truncated(_)), "{cut}: {e}"),
                }
            }
        }
        let f = finished().encode();
        for cut in 0..body(&f).len() {
            assert!(FromSupervisor::decode(&body(&f)[..cut]).is_err(), "{cut}");
        }
    }

    #[test]
    fn bad_frames_name_what_is_wrong() {
        assert_eq!(
            ToSupervisor::decode(&[9]).unwrap_err(),
            FrameError::UnknownTag(9)
        );
        assert_eq!(
            FromSupervisor::decode(&[SPAWN]).unwrap_err(),
            FrameError::UnknownTag(SPAWN)
        );
        let mut extra = body(&ToSupervisor::Bye.encode()).to_vec();
        extra.push(0);
        assert_eq!(
            ToSupervisor::decode(&extra).unwrap_err(),
            FrameError::Trailing(1)
        );
        // A uid that is not UTF-8.
        let mut bad = vec![TAKEN, 0, 0, 0, 1, 0, 0, 0, 1, 0xff];
        assert_eq!(
            ToSupervisor::decode(&bad).unwrap_err(),
            FrameError::NotUtf8("uids")
        );
        // A count far beyond what the frame holds is refused, not allocated.
        bad = vec![TAKEN, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            ToSupervisor::decode(&bad).unwrap_err(),
            FrameError::Truncated("uids")
        );
        // An optional field whose flag is neither 0 nor 1.
        let mut spawn = body(&spawn().encode()).to_vec();
        let flag_at = 1 + 4 + 7 + 4 + (4 + 9) + (4 + 3) + 4;
        assert_eq!(spawn[flag_at], 1);
        spawn[flag_at] = 7;
        assert_eq!(
            ToSupervisor::decode(&spawn).unwrap_err(),
            FrameError::BadFlag("stdin", 7)
        );
    }

    #[tokio::test]
    async fn the_stream_reader_bounds_and_delimits_frames() {
        let mut two = ToSupervisor::Bye.encode();
        two.extend(spawn().encode());
        let mut r = &two[..];
        let first = read_frame(&mut r, 1024).await.unwrap().unwrap();
        assert_eq!(ToSupervisor::decode(&first).unwrap(), ToSupervisor::Bye);
        let second = read_frame(&mut r, 1024).await.unwrap().unwrap();
        assert_eq!(ToSupervisor::decode(&second).unwrap(), spawn());
        assert_eq!(read_frame(&mut r, 1024).await.unwrap(), None);

        let big = spawn().encode();
        let err = read_frame(&mut &big[..], 10).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLong { max: 10, .. }), "{err}");
        assert_eq!(
            read_frame(&mut &big[..2], 1024).await.unwrap_err(),
            FrameError::Truncated("length")
        );
        assert_eq!(
            read_frame(&mut &big[..9], 1024).await.unwrap_err(),
            FrameError::Truncated("body")
        );
        assert_eq!(
            read_frame(&mut &[0u8, 0, 0, 0][..], 1024)
                .await
                .unwrap_err(),
            FrameError::Empty
        );
    }
}
