//! Property tests of the HEM <-> agent framing: every message survives encode/decode, and no
//! byte sequence makes the decoders panic.

use one_proto::agent::{
    Execute, Executed, FrameBuffer, FrameError, HookEntry, MAX_FRAME_LEN, Reply, Request,
};
use proptest::prelude::*;

fn execute() -> impl Strategy<Value = Request> {
    (
        any::<u64>(),
        prop::collection::vec(".*", 0..5),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
        prop::option::of(any::<u64>()),
        prop::collection::vec((".*", ".*"), 0..3),
        any::<u32>(),
    )
        .prop_map(|(id, argv, stdin, timeout_ms, env, output_cap)| {
            Request::Execute(Execute {
                id,
                argv,
                stdin,
                timeout_ms,
                env,
                output_cap,
            })
        })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        execute(),
        any::<u64>().prop_map(|id| Request::Cancel { id }),
        any::<u64>().prop_map(|id| Request::ListHooks { id }),
        (
            any::<u64>(),
            ".*",
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(id, path, mode, data)| Request::PutFile {
                id,
                path,
                mode,
                data
            }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let result = (
        (any::<u64>(), any::<i32>(), prop::option::of(any::<i32>())),
        (any::<u64>(), any::<u64>()),
        (
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(any::<u8>(), 0..64),
        ),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::option::of(".*"),
    )
        .prop_map(
            |(
                (id, code, signal),
                (started_unix_ms, duration_us),
                (stdout, stderr),
                flags,
                start_error,
            )| {
                Reply::Result(Executed {
                    id,
                    code,
                    signal,
                    started_unix_ms,
                    duration_us,
                    stdout,
                    stderr,
                    stdout_truncated: flags.0,
                    stderr_truncated: flags.1,
                    timed_out: flags.2,
                    start_error,
                })
            },
        );
    let entry = (".*", any::<u64>(), any::<u32>(), any::<[u8; 32]>()).prop_map(
        |(path, size, mode, sha256)| HookEntry {
            path,
            size,
            mode,
            sha256,
        },
    );
    prop_oneof![
        (any::<u32>(), ".*", ".*", any::<u32>()).prop_map(|(protocol, version, base, pid)| {
            Reply::Hello {
                protocol,
                version,
                base,
                pid,
            }
        }),
        result,
        (
            any::<u64>(),
            prop::result::maybe_ok(prop::collection::vec(entry, 0..4), ".*")
        )
            .prop_map(|(id, entries)| Reply::HookList { id, entries }),
        (any::<u64>(), prop::option::of(".*")).prop_map(|(id, error)| Reply::PutDone { id, error }),
        ".*".prop_map(|message| Reply::ProtocolError { message }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(req in request()) {
        let frame = req.encode().unwrap();
        prop_assert_eq!(Request::decode(&frame[4..]).unwrap(), req);
    }

    #[test]
    fn replies_round_trip(rep in reply()) {
        let frame = rep.encode().unwrap();
        prop_assert_eq!(Reply::decode(&frame[4..]).unwrap(), rep);
    }

    #[test]
    fn arbitrary_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Request::decode(&body);
        let _ = Reply::decode(&body);
    }

    /// Bodies that start with a valid tag reach deep into the field readers.
    #[test]
    fn arbitrary_bodies_after_valid_tags_never_panic(
        tag in prop::sample::select(vec![0x01u8, 0x02, 0x03, 0x04, 0x81, 0x82, 0x83, 0x84, 0x85]),
        rest in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut body = vec![tag];
        body.extend(rest);
        let _ = Request::decode(&body);
        let _ = Reply::decode(&body);
    }

    /// Truncating or corrupting one byte of a valid frame gives an error or another valid
    /// message, never a panic.
    #[test]
    fn mutated_frames_never_panic(req in request(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let frame = req.encode().unwrap();
        let mut body = frame[4..].to_vec();
        let i = at.index(body.len());
        body[i] = byte;
        let _ = Request::decode(&body);
        let n = cut.index(body.len() + 1);
        let _ = Request::decode(&body[..n]);
    }

    /// A stream of arbitrary bytes fed in arbitrary pieces yields frames or an error, never a
    /// panic, and never a frame body larger than the limit.
    #[test]
    fn frame_buffer_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let mut fb = FrameBuffer::new();
        'outer: for chunk in chunks {
            fb.extend(&chunk);
            loop {
                match fb.next_body() {
                    Ok(Some(body)) => {
                        prop_assert!(body.len() <= MAX_FRAME_LEN);
                        let _ = Reply::decode(&body);
                    }
                    Ok(None) => break,
                    Err(FrameError::TooLarge { .. }) => break 'outer,
                    Err(e) => prop_assert!(false, "unexpected error {e}"),
                }
            }
        }
    }

    /// Valid frames split at arbitrary points come out whole and in order.
    #[test]
    fn frame_buffer_reassembles(reps in prop::collection::vec(reply(), 1..6), split in any::<prop::sample::Index>()) {
        let stream: Vec<u8> = reps.iter().flat_map(|r| r.encode().unwrap()).collect();
        let at = split.index(stream.len() + 1);
        let mut fb = FrameBuffer::new();
        let mut got = Vec::new();
        for part in [&stream[..at], &stream[at..]] {
            fb.extend(part);
            while let Some(r) = fb.next_reply().unwrap() {
                got.push(r);
            }
        }
        prop_assert_eq!(got, reps);
        prop_assert_eq!(fb.buffered(), 0);
    }
}

#[test]
fn a_huge_count_is_refused_without_allocating() {
    // Execute with an argv count of u32::MAX and nothing behind it.
    let mut body = vec![0x01];
    body.extend(7u64.to_be_bytes());
    body.extend(u32::MAX.to_be_bytes());
    assert!(matches!(
        Request::decode(&body),
        Err(FrameError::Truncated { .. })
    ));
}

#[test]
fn invalid_utf8_and_markers_are_named() {
    let mut body = vec![0x85];
    body.extend(2u32.to_be_bytes());
    body.extend([0xff, 0xfe]);
    assert_eq!(
        Reply::decode(&body),
        Err(FrameError::BadUtf8 { field: "message" })
    );
    let mut body = vec![0x84];
    body.extend(1u64.to_be_bytes());
    body.push(7);
    assert!(matches!(
        Reply::decode(&body),
        Err(FrameError::BadMarker { byte: 7, .. })
    ));
}
