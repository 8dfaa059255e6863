//! Frames between the HEM and `onehem-agent`, spoken over the stdin/stdout of an SSH exec channel.
//!
//! Every frame is a big-endian `u32` body length followed by the body; the body starts with a
//! one-byte tag and carries the fields of one message in a fixed order:
//!
//! | type | encoding |
//! |---|---|
//! | `u8`, `u32`, `u64`, `i32` | fixed width, big-endian |
//! | `bool` | one byte, `0` or `1` (anything else is an error) |
//! | bytes | `u32` length, then the bytes |
//! | string | bytes that must be UTF-8 |
//! | option | one byte `0` (absent) or `1` followed by the value |
//! | list | `u32` count, then the items |
//!
//! A body longer than [`MAX_FRAME_LEN`] is refused by both the encoder and the decoder, so a
//! corrupt length prefix can never make a peer allocate gigabytes. A body with trailing bytes,
//! an unknown tag or a field running past the end is an error, never a panic.
//!
//! The agent speaks first: it sends [`Reply::Hello`] as soon as it starts. Requests carry an id
//! chosen by the HEM; every reply but `Hello` and `ProtocolError` echoes the id of its request.

use std::fmt;

/// Version of this frame format. A peer with another number is not spoken to.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame body accepted or produced (32 MiB).
pub const MAX_FRAME_LEN: usize = 32 * 1024 * 1024;

/// Largest output cap the agent applies to each of stdout and stderr, so that a result frame
/// always fits in [`MAX_FRAME_LEN`].
pub const MAX_OUTPUT_CAP: u32 = 8 * 1024 * 1024;

/// Largest file a single [`Request::PutFile`] may carry.
pub const MAX_PUT_FILE_LEN: usize = 24 * 1024 * 1024;

const TAG_EXECUTE: u8 = 0x01;
const TAG_CANCEL: u8 = 0x02;
const TAG_LIST_HOOKS: u8 = 0x03;
const TAG_PUT_FILE: u8 = 0x04;
const TAG_HELLO: u8 = 0x81;
const TAG_RESULT: u8 = 0x82;
const TAG_HOOK_LIST: u8 = 0x83;
const TAG_PUT_DONE: u8 = 0x84;
const TAG_PROTOCOL_ERROR: u8 = 0x85;

/// Why a frame could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces a body larger than [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced or produced body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is empty (no tag).
    #[error("empty frame body")]
    Empty,
    /// The tag byte names no message of this direction.
    #[error("unknown frame tag 0x{tag:02x}")]
    UnknownTag {
        /// The tag byte.
        tag: u8,
    },
    /// A field runs past the end of the body.
    #[error("frame truncated while reading {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A boolean or option marker is neither 0 nor 1.
    #[error("invalid marker byte 0x{byte:02x} in {field}")]
    BadMarker {
        /// The field being read.
        field: &'static str,
        /// The byte found.
        byte: u8,
    },
    /// A string field is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    BadUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes remain after the last field.
    #[error("{count} trailing bytes after a {message} frame")]
    TrailingBytes {
        /// The message decoded.
        message: &'static str,
        /// Number of bytes left over.
        count: usize,
    },
}

/// One execution request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Execute {
    /// Request id, echoed in the result.
    pub id: u64,
    /// `argv[0]` is the command (absolute below the agent's base, or relative to it).
    pub argv: Vec<String>,
    /// Data for the command's stdin; `None` closes stdin at once.
    pub stdin: Option<Vec<u8>>,
    /// Kill the process group after this many milliseconds.
    pub timeout_ms: Option<u64>,
    /// Variables added to the agent's environment for this command.
    pub env: Vec<(String, String)>,
    /// Bytes kept of stdout and of stderr each (clamped to [`MAX_OUTPUT_CAP`] by the agent).
    pub output_cap: u32,
}

/// What one execution produced on the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Executed {
    /// The id of the [`Execute`] request.
    pub id: u64,
    /// Exit code; 255 on timeout, signal or start failure.
    pub code: i32,
    /// The signal that ended the process, if one did.
    pub signal: Option<i32>,
    /// Start time on the host, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Time from spawn to exit on the host, microseconds.
    pub duration_us: u64,
    /// Captured stdout, at most the cap.
    pub stdout: Vec<u8>,
    /// Captured stderr, at most the cap.
    pub stderr: Vec<u8>,
    /// Whether stdout was longer than the cap.
    pub stdout_truncated: bool,
    /// Whether stderr was longer than the cap.
    pub stderr_truncated: bool,
    /// Whether the command was killed because its timeout expired.
    pub timed_out: bool,
    /// Why the command was refused or could not be started.
    pub start_error: Option<String>,
}

/// One regular file below the agent's base directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HookEntry {
    /// Path relative to the base, components separated by `/`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
}

/// Frames the HEM sends to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Run a command.
    Execute(Execute),
    /// Kill the process group of a running execution; its result follows as usual.
    Cancel {
        /// The id of the execution.
        id: u64,
    },
    /// List the base directory with checksums.
    ListHooks {
        /// Request id.
        id: u64,
    },
    /// Write a file below the base directory (atomically: temporary file, then rename).
    PutFile {
        /// Request id.
        id: u64,
        /// Path relative to the base; no `..`, not absolute.
        path: String,
        /// Permission bits.
        mode: u32,
        /// The whole content.
        data: Vec<u8>,
    },
}

/// Frames the agent sends to the HEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Sent once, first, when the agent starts.
    Hello {
        /// [`PROTOCOL_VERSION`] of the agent.
        protocol: u32,
        /// The agent's package version.
        version: String,
        /// The base directory the agent enforces.
        base: String,
        /// The agent's process id on the host.
        pid: u32,
    },
    /// The end of an execution.
    Result(Executed),
    /// Answer to [`Request::ListHooks`].
    HookList {
        /// Request id.
        id: u64,
        /// The files, or why the directory could not be listed.
        entries: Result<Vec<HookEntry>, String>,
    },
    /// Answer to [`Request::PutFile`].
    PutDone {
        /// Request id.
        id: u64,
        /// `None` when the file was written.
        error: Option<String>,
    },
    /// The agent received a frame it could not decode; it exits after sending this.
    ProtocolError {
        /// What was wrong.
        message: String,
    },
}

impl Request {
    /// The whole frame (length prefix included).
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut w = Writer::new();
        match self {
            Request::Execute(e) => {
                w.u8(TAG_EXECUTE);
                w.u64(e.id);
                w.u32(len_u32(e.argv.len()));
                for arg in &e.argv {
                    w.bytes(arg.as_bytes());
                }
                w.opt(e.stdin.as_deref(), |w, v| w.bytes(v));
                w.opt(e.timeout_ms, |w, v| w.u64(v));
                w.u32(len_u32(e.env.len()));
                for (k, v) in &e.env {
                    w.bytes(k.as_bytes());
                    w.bytes(v.as_bytes());
                }
                w.u32(e.output_cap);
            }
            Request::Cancel { id } => {
                w.u8(TAG_CANCEL);
                w.u64(*id);
            }
            Request::ListHooks { id } => {
                w.u8(TAG_LIST_HOOKS);
                w.u64(*id);
            }
            Request::PutFile {
                id,
                path,
                mode,
                data,
            } => {
                w.u8(TAG_PUT_FILE);
                w.u64(*id);
                w.bytes(path.as_bytes());
                w.u32(*mode);
                w.bytes(data);
            }
        }
        w.finish()
    }

    /// Decodes one frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Request, FrameError> {
        let mut r = Reader::new(body)?;
        let tag = r.u8("tag")?;
        let request = match tag {
            TAG_EXECUTE => {
                let id = r.u64("execute id")?;
                let argc = r.count("argv count")?;
                let mut argv = Vec::with_capacity(argc.min(r.remaining()));
                for _ in 0..argc {
                    argv.push(r.string("argv")?);
                }
                let stdin = r.opt("stdin", |r| r.bytes("stdin"))?;
                let timeout_ms = r.opt("timeout", |r| r.u64("timeout"))?;
                let envc = r.count("env count")?;
                let mut env = Vec::with_capacity(envc.min(r.remaining()));
                for _ in 0..envc {
                    let k = r.string("env name")?;
                    let v = r.string("env value")?;
                    env.push((k, v));
                }
                let output_cap = r.u32("output cap")?;
                r.finish("execute")?;
                Request::Execute(Execute {
                    id,
                    argv,
                    stdin,
                    timeout_ms,
                    env,
                    output_cap,
                })
            }
            TAG_CANCEL => {
                let id = r.u64("cancel id")?;
                r.finish("cancel")?;
                Request::Cancel { id }
            }
            TAG_LIST_HOOKS => {
                let id = r.u64("list id")?;
                r.finish("list hooks")?;
                Request::ListHooks { id }
            }
            TAG_PUT_FILE => {
                let id = r.u64("put id")?;
                let path = r.string("put path")?;
                let mode = r.u32("put mode")?;
                let data = r.bytes("put data")?;
                r.finish("put file")?;
                Request::PutFile {
                    id,
                    path,
                    mode,
                    data,
                }
            }
            tag => return Err(FrameError::UnknownTag { tag }),
        };
        Ok(request)
    }
}

impl Reply {
    /// The whole frame (length prefix included).
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let mut w = Writer::new();
        match self {
            Reply::Hello {
                protocol,
                version,
                base,
                pid,
            } => {
                w.u8(TAG_HELLO);
                w.u32(*protocol);
                w.bytes(version.as_bytes());
                w.bytes(base.as_bytes());
                w.u32(*pid);
            }
            Reply::Result(r) => {
                w.u8(TAG_RESULT);
                w.u64(r.id);
                w.i32(r.code);
                w.opt(r.signal, |w, v| w.i32(v));
                w.u64(r.started_unix_ms);
                w.u64(r.duration_us);
                w.bytes(&r.stdout);
                w.bytes(&r.stderr);
                w.bool(r.stdout_truncated);
                w.bool(r.stderr_truncated);
                w.bool(r.timed_out);
                w.opt(r.start_error.as_deref(), |w, v| w.bytes(v.as_bytes()));
            }
            Reply::HookList { id, entries } => {
                w.u8(TAG_HOOK_LIST);
                w.u64(*id);
                match entries {
                    Ok(entries) => {
                        w.u8(1);
                        w.u32(len_u32(entries.len()));
                        for e in entries {
                            w.bytes(e.path.as_bytes());
                            w.u64(e.size);
                            w.u32(e.mode);
                            w.raw(&e.sha256);
                        }
                    }
                    Err(message) => {
                        w.u8(0);
                        w.bytes(message.as_bytes());
                    }
                }
            }
            Reply::PutDone { id, error } => {
                w.u8(TAG_PUT_DONE);
                w.u64(*id);
                w.opt(error.as_deref(), |w, v| w.bytes(v.as_bytes()));
            }
            Reply::ProtocolError { message } => {
                w.u8(TAG_PROTOCOL_ERROR);
                w.bytes(message.as_bytes());
            }
        }
        w.finish()
    }

    /// Decodes one frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Reply, FrameError> {
        let mut r = Reader::new(body)?;
        let tag = r.u8("tag")?;
        let reply = match tag {
            TAG_HELLO => {
                let protocol = r.u32("protocol")?;
                let version = r.string("version")?;
                let base = r.string("base")?;
                let pid = r.u32("pid")?;
                r.finish("hello")?;
                Reply::Hello {
                    protocol,
                    version,
                    base,
                    pid,
                }
            }
            TAG_RESULT => {
                let id = r.u64("result id")?;
                let code = r.i32("code")?;
                let signal = r.opt("signal", |r| r.i32("signal"))?;
                let started_unix_ms = r.u64("started")?;
                let duration_us = r.u64("duration")?;
                let stdout = r.bytes("stdout")?;
                let stderr = r.bytes("stderr")?;
                let stdout_truncated = r.bool("stdout truncated")?;
                let stderr_truncated = r.bool("stderr truncated")?;
                let timed_out = r.bool("timed out")?;
                let start_error = r.opt("start error", |r| r.string("start error"))?;
                r.finish("result")?;
                Reply::Result(Executed {
                    id,
                    code,
                    signal,
                    started_unix_ms,
                    duration_us,
                    stdout,
                    stderr,
                    stdout_truncated,
                    stderr_truncated,
                    timed_out,
                    start_error,
                })
            }
            TAG_HOOK_LIST => {
                let id = r.u64("list id")?;
                let entries = if r.bool("list status")? {
                    let n = r.count("entry count")?;
                    let mut entries = Vec::with_capacity(n.min(r.remaining()));
                    for _ in 0..n {
                        let path = r.string("entry path")?;
                        let size = r.u64("entry size")?;
                        let mode = r.u32("entry mode")?;
                        let sha256 = r.array32("entry sha256")?;
                        entries.push(HookEntry {
                            path,
                            size,
                            mode,
                            sha256,
                        });
                    }
                    Ok(entries)
                } else {
                    Err(r.string("list error")?)
                };
                r.finish("hook list")?;
                Reply::HookList { id, entries }
            }
            TAG_PUT_DONE => {
                let id = r.u64("put id")?;
                let error = r.opt("put error", |r| r.string("put error"))?;
                r.finish("put done")?;
                Reply::PutDone { id, error }
            }
            TAG_PROTOCOL_ERROR => {
                let message = r.string("message")?;
                r.finish("protocol error")?;
                Reply::ProtocolError { message }
            }
            tag => return Err(FrameError::UnknownTag { tag }),
        };
        Ok(reply)
    }
}

/// Reassembles frames from a byte stream that arrives in arbitrary pieces.
#[derive(Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
}

impl fmt::Debug for FrameBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBuffer")
            .field("buffered", &self.buffered())
            .finish()
    }
}

impl FrameBuffer {
    /// An empty buffer.
    pub fn new() -> FrameBuffer {
        FrameBuffer::default()
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, data: &[u8]) {
        // Compacting only when the consumed prefix dominates keeps the cost linear.
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Number of bytes received and not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// The next complete frame body, if one has arrived. An error means the stream is corrupt
    /// (a length over [`MAX_FRAME_LEN`]) and cannot be resynchronised.
    pub fn next_body(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let Some(prefix) = pending.get(..4) else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        let Some(body) = pending.get(4..4 + len) else {
            return Ok(None);
        };
        let body = body.to_vec();
        self.start += 4 + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(body))
    }

    /// The next complete request, if one has arrived.
    pub fn next_request(&mut self) -> Result<Option<Request>, FrameError> {
        self.next_body()?.map(|b| Request::decode(&b)).transpose()
    }

    /// The next complete reply, if one has arrived.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, FrameError> {
        self.next_body()?.map(|b| Reply::decode(&b)).transpose()
    }
}

/// Lengths written on the wire are `u32`; anything larger is caught by the frame size check,
/// because such a field alone exceeds [`MAX_FRAME_LEN`].
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

struct Writer {
    buf: Vec<u8>,
    overflow: bool,
}

impl Writer {
    fn new() -> Writer {
        Writer {
            buf: vec![0, 0, 0, 0],
            overflow: false,
        }
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn raw(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    fn bytes(&mut self, v: &[u8]) {
        if v.len() > MAX_FRAME_LEN {
            // Not copied: the frame is refused in `finish` anyway.
            self.overflow = true;
            return;
        }
        self.u32(len_u32(v.len()));
        self.buf.extend_from_slice(v);
    }

    fn opt<T>(&mut self, v: Option<T>, write: impl FnOnce(&mut Writer, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                write(self, v);
            }
        }
    }

    fn finish(mut self) -> Result<Vec<u8>, FrameError> {
        let len = self.buf.len() - 4;
        if self.overflow || len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge {
                len: if self.overflow { usize::MAX } else { len },
                max: MAX_FRAME_LEN,
            });
        }
        self.buf[..4].copy_from_slice(&len_u32(len).to_be_bytes());
        Ok(self.buf)
    }
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(body: &'a [u8]) -> Result<Reader<'a>, FrameError> {
        if body.is_empty() {
            return Err(FrameError::Empty);
        }
        if body.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge {
                len: body.len(),
                max: MAX_FRAME_LEN,
            });
        }
        Ok(Reader { data: body })
    }

    fn remaining(&self) -> usize {
        self.data.len()
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FrameError> {
        if n > self.data.len() {
            return Err(FrameError::Truncated { field });
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FrameError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn array32(&mut self, field: &'static str) -> Result<[u8; 32], FrameError> {
        self.array::<32>(field)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, FrameError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, FrameError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(FrameError::BadMarker { field, byte }),
        }
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, FrameError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, FrameError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, FrameError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A list count. Every item takes at least one byte, so a count above the bytes left is
    /// corrupt; refusing it early keeps allocations bounded by the frame size.
    fn count(&mut self, field: &'static str) -> Result<usize, FrameError> {
        let n = self.u32(field)? as usize;
        if n > self.remaining() {
            return Err(FrameError::Truncated { field });
        }
        Ok(n)
    }

    fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, FrameError> {
        let n = self.u32(field)? as usize;
        Ok(self.take(n, field)?.to_vec())
    }

    fn string(&mut self, field: &'static str) -> Result<String, FrameError> {
        String::from_utf8(self.bytes(field)?).map_err(|_| FrameError::BadUtf8 { field })
    }

    fn opt<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, FrameError>,
    ) -> Result<Option<T>, FrameError> {
        if self.bool(field)? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    fn finish(&self, message: &'static str) -> Result<(), FrameError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(FrameError::TrailingBytes {
                message,
                count: self.data.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_round_trips() {
        let req = Request::Execute(Execute {
            id: 7,
            argv: vec!["/h/x".into(), "a b".into(), String::new()],
            stdin: Some(b"in".to_vec()),
            timeout_ms: Some(1500),
            env: vec![("K".into(), "V".into())],
            output_cap: 1024,
        });
        let frame = req.encode().unwrap();
        assert_eq!(
            u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        assert_eq!(Request::decode(&frame[4..]).unwrap(), req);
    }

    #[test]
    fn frame_buffer_reassembles_split_frames() {
        let a = Reply::PutDone { id: 1, error: None }.encode().unwrap();
        let b = Reply::ProtocolError {
            message: "x".into(),
        }
        .encode()
        .unwrap();
        let stream: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        let mut fb = FrameBuffer::new();
        let mut got = Vec::new();
        for byte in stream {
            fb.extend(&[byte]);
            while let Some(r) = fb.next_reply().unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(fb.buffered(), 0);
    }

    #[test]
    fn oversized_prefix_is_refused() {
        let mut fb = FrameBuffer::new();
        fb.extend(&u32::MAX.to_be_bytes());
        assert!(matches!(fb.next_body(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn oversized_frame_is_not_encoded() {
        let req = Request::PutFile {
            id: 1,
            path: "x".into(),
            mode: 0o755,
            data: vec![0; MAX_FRAME_LEN + 1],
        };
        assert!(matches!(req.encode(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn trailing_bytes_and_wrong_direction_are_errors() {
        let mut frame = Request::Cancel { id: 3 }.encode().unwrap();
        frame.push(0);
        assert!(matches!(
            Request::decode(&frame[4..]),
            Err(FrameError::TrailingBytes { .. })
        ));
        let frame = Request::Cancel { id: 3 }.encode().unwrap();
        assert!(matches!(
            Reply::decode(&frame[4..]),
            Err(FrameError::UnknownTag { tag: TAG_CANCEL })
        ));
    }
}
