//! A stand-in front-end (XML-RPC hook pool) and Hook Manager driver (PUB with sequence tokens,
//! result REP, journal replay REP) for HEM tests, on loopback sockets bound before use.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use one_proto::encoding::{b64_decode_strict, b64_encode};
use one_proto::event::{HookMessage, ObjectKind, StateEvent};
use one_proto::hook::{Hook, HookType, pool_to_xml};
use one_proto::hook_log::ExecutionResult;
use one_proto::keys::{event_keys, with_seq};
use one_proto::mad::ResultFrame;
use one_proto::replay::{ReplayHeader, ReplayRequest};
use one_proto::template::Template;
use one_proto::xmlrpc::{Value, format_response, parse_call};

pub fn hook(id: i64, hook_type: HookType, template: &str) -> Hook {
    Hook {
        id,
        name: format!("hook-{id}"),
        hook_type,
        lock: None,
        template: Template::parse(template).expect("template"),
    }
}

pub fn vm_state(vm: i64, state: &str, lcm: &str, host: Option<&str>) -> String {
    HookMessage::State(StateEvent {
        object: ObjectKind::Vm,
        state: state.into(),
        lcm_state: Some(lcm.into()),
        resource_id: vm,
        service_id: None,
        remote_host: host.map(str::to_string),
        body: format!("<VM><ID>{vm}</ID><NAME>test</NAME></VM>"),
    })
    .to_xml()
}

/// Waits (bounded) until `cond` holds.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    one_e2e::stack::wait_for(what, limit, || cond().then_some(()))
        .unwrap_or_else(|e| panic!("{e:#}"));
}

// ------------------------------------------------------------------ front-end

pub struct FakeFrontEnd {
    pub url: String,
    hooks: Arc<Mutex<BTreeMap<i64, Hook>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeFrontEnd {
    pub fn start() -> FakeFrontEnd {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/RPC2", listener.local_addr().unwrap());
        let hooks = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hooks.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let _ = serve(stream, &h);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeFrontEnd {
            url,
            hooks,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set(&self, hook: Hook) {
        self.hooks.lock().unwrap().insert(hook.id, hook);
    }
}

impl Drop for FakeFrontEnd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: std::net::TcpStream, hooks: &Mutex<BTreeMap<i64, Hook>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let call = parse_call(&body).expect("methodCall");
    let hooks = hooks.lock().unwrap();
    let reply = match call.method.as_str() {
        "one.hookpool.info" => {
            let all: Vec<Hook> = hooks.values().cloned().collect();
            ok(pool_to_xml(&all).unwrap())
        }
        "one.hook.info" => {
            let id = call.params.get(1).and_then(Value::as_i64).unwrap_or(-1);
            match hooks.get(&id) {
                Some(h) => ok(h.to_xml(Some("<HOOKLOG></HOOKLOG>")).unwrap()),
                None => Value::Array(vec![
                    Value::Bool(false),
                    Value::String(format!("[one.hook.info] Error getting hook [{id}].")),
                    Value::Int(1024),
                ]),
            }
        }
        other => panic!("unexpected call {other}"),
    };
    let text = format_response(&reply);
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()
}

fn ok(xml: String) -> Value {
    Value::Array(vec![Value::Bool(true), Value::String(xml), Value::Int(0)])
}

// ------------------------------------------------------------------ driver

type Journal = Arc<Mutex<Vec<(u64, Vec<(String, String)>)>>>;

pub struct FakeDriver {
    pub pub_endpoint: String,
    pub results_endpoint: String,
    pub replay_endpoint: String,
    publisher: Mutex<zmq::Socket>,
    journal: Journal,
    results: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    sequenced: bool,
    _ctx: zmq::Context,
}

fn bind(ctx: &zmq::Context, kind: zmq::SocketType) -> (zmq::Socket, String) {
    let s = ctx.socket(kind).unwrap();
    s.set_linger(0).unwrap();
    s.bind("tcp://127.0.0.1:*").unwrap();
    let e = s.get_last_endpoint().unwrap().unwrap();
    (s, e)
}

impl FakeDriver {
    /// A driver with sequence tokens and a replay endpoint.
    pub fn start() -> FakeDriver {
        FakeDriver::start_with(true)
    }

    /// A driver like the reference one: bare keys, and a replay endpoint that accepts TCP
    /// connections but never answers (as a port nobody serves ZeroMQ on).
    pub fn start_reference() -> FakeDriver {
        FakeDriver::start_with(false)
    }

    fn start_with(sequenced: bool) -> FakeDriver {
        let ctx = zmq::Context::new();
        let (publisher, pub_endpoint) = bind(&ctx, zmq::PUB);
        publisher.set_sndhwm(100_000).unwrap();
        let (rep, results_endpoint) = bind(&ctx, zmq::REP);
        let (replay, mut replay_endpoint) = bind(&ctx, zmq::REP);
        let mut silent = None;
        if !sequenced {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            replay_endpoint = format!("tcp://{}", listener.local_addr().unwrap());
            silent = Some(listener);
        }
        let journal: Journal = Arc::new(Mutex::new(Vec::new()));
        let results = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (results, stop) = (results.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if rep.poll(zmq::POLLIN, 50).unwrap_or(0) == 0 {
                        continue;
                    }
                    let frame = rep.recv_string(0).unwrap().unwrap();
                    results.lock().unwrap().push(frame);
                    rep.send("ACK", 0).unwrap();
                }
            }));
        }
        {
            let (journal, stop) = (journal.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                // Keeps the silent listener open for the driver's lifetime.
                let _silent = silent;
                while !stop.load(Ordering::SeqCst) {
                    if replay.poll(zmq::POLLIN, 50).unwrap_or(0) == 0 {
                        continue;
                    }
                    let req = ReplayRequest::parse(&replay.recv_bytes(0).unwrap()).unwrap();
                    let j = journal.lock().unwrap();
                    let head = j.last().map(|e| e.0).unwrap_or(0);
                    let oldest = j.first().map(|e| e.0).unwrap_or(head + 1);
                    let chosen: Vec<_> = j
                        .iter()
                        .filter(|e| e.0 > req.after)
                        .take(req.max as usize)
                        .collect();
                    let header = ReplayHeader {
                        oldest,
                        head,
                        count: chosen.len() as u32,
                    };
                    let mut frames = vec![header.to_frame().into_bytes()];
                    for (_, keys) in chosen {
                        for (k, c) in keys {
                            frames.push(k.clone().into_bytes());
                            frames.push(c.clone().into_bytes());
                        }
                    }
                    replay.send_multipart(frames, 0).unwrap();
                }
            }));
        }
        FakeDriver {
            pub_endpoint,
            results_endpoint,
            replay_endpoint,
            publisher: Mutex::new(publisher),
            journal,
            results,
            stop,
            threads,
            sequenced,
            _ctx: ctx,
        }
    }

    fn append(&self, keys: Vec<String>, content: String, publish: bool) -> u64 {
        let mut j = self.journal.lock().unwrap();
        let seq = j.last().map(|e| e.0).unwrap_or(0) + 1;
        let pairs: Vec<(String, String)> = keys
            .iter()
            .map(|k| {
                let key = if self.sequenced {
                    with_seq(k, seq)
                } else {
                    k.clone()
                };
                (key, content.clone())
            })
            .collect();
        j.push((seq, pairs.clone()));
        if publish {
            let p = self.publisher.lock().unwrap();
            for (k, c) in pairs {
                p.send(k.as_bytes(), zmq::SNDMORE).unwrap();
                p.send(c.as_bytes(), 0).unwrap();
            }
        }
        seq
    }

    /// Journals and publishes an event; returns its sequence number.
    pub fn publish(&self, xml: &str) -> u64 {
        self.append(event_keys(xml).unwrap(), b64_encode(xml.as_bytes()), true)
    }

    /// Journals an event without publishing it (as if the HEM's SUB missed it).
    pub fn journal_only(&self, xml: &str) -> u64 {
        self.append(event_keys(xml).unwrap(), b64_encode(xml.as_bytes()), false)
    }

    pub fn publish_retry(&self, retry_xml: &str) -> u64 {
        self.append(
            vec!["RETRY".into()],
            format!("{} ", b64_encode(retry_xml.as_bytes())),
            true,
        )
    }

    /// The result frames received so far, with their decoded bodies.
    pub fn results(&self) -> Vec<(ResultFrame, ExecutionResult)> {
        self.results
            .lock()
            .unwrap()
            .iter()
            .map(|f| {
                let frame = ResultFrame::parse(f.as_bytes()).expect("result frame");
                let body = String::from_utf8(b64_decode_strict(&frame.body).unwrap()).unwrap();
                let result = ExecutionResult::parse(&body).expect("result body");
                (frame, result)
            })
            .collect()
    }

    pub fn wait_results(&self, n: usize) -> Vec<(ResultFrame, ExecutionResult)> {
        wait_for(&format!("{n} results"), Duration::from_secs(60), || {
            self.results.lock().unwrap().len() >= n
        });
        self.results()
    }
}

impl Drop for FakeDriver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A HEM configuration file for these fakes, below `dir`.
pub fn hem_config(dir: &Path, front: &FakeFrontEnd, driver: &FakeDriver, extra: &str) -> PathBuf {
    let auth = dir.join("one_auth");
    std::fs::write(&auth, "oneadmin:password\n").unwrap();
    std::fs::create_dir_all(dir.join("hooks")).unwrap();
    let text = format!(
        ":hook_base_path: {hooks}\n:subscriber_endpoint: {sub}\n:replier_endpoint: {rep}\n\
         replay_endpoint: {replay}\nstate_db: {db}\none_xmlrpc: {url}\none_auth: {auth}\n\
         log_file: {log}\nlog_stderr: false\nresult_timeout: 1\nreplay_poll_interval: 0.1\n\
         kill_grace: 0.2\nshutdown_grace: 1\nhook_allowed_paths: [/bin, /usr/bin]\n{extra}",
        hooks = dir.join("hooks").display(),
        sub = driver.pub_endpoint,
        rep = driver.results_endpoint,
        replay = driver.replay_endpoint,
        db = dir.join("hem.db").display(),
        url = front.url,
        auth = auth.display(),
        log = dir.join("onehem.log").display(),
    );
    let path = dir.join("onehem-server.conf");
    std::fs::write(&path, text).unwrap();
    path
}
