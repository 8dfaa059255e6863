//! MAD lines (§6.2), result frames (§5.5) and replay frames (ARCHITECTURE.md "Replay").

use one_proto::mad::{
    DriverLine, FrameError, OnedLine, ResultFrame, journaled_line, oned_execute_line,
    oned_execute_line_with_id, oned_retry_line, oned_retry_line_with_id, parse_driver_line,
    parse_journaled_line, parse_oned_line,
};
use one_proto::replay::{ReplayError, ReplayHeader, ReplayRequest, err_frame};

#[test]
fn oned_lines_are_read_as_the_reference_driver_reads_them() {
    assert_eq!(parse_oned_line("INIT\n"), OnedLine::Init);
    assert_eq!(parse_oned_line("init"), OnedLine::Init);
    assert_eq!(parse_oned_line("FINALIZE"), OnedLine::Finalize);
    let exec = parse_oned_line(&oned_execute_line("QUJD"));
    assert_eq!(
        exec,
        OnedLine::Execute {
            id: -1,
            payload: "QUJD".into()
        }
    );
    assert_eq!(exec.publish_content().as_deref(), Some("QUJD"));
    let retry = parse_oned_line(&(oned_retry_line("UkVU") + "\r\n"));
    assert_eq!(
        retry,
        OnedLine::Retry {
            id: -1,
            payload: "UkVU".into()
        }
    );
    // The trailing space of the RETRY content (§5.3).
    assert_eq!(retry.publish_content().as_deref(), Some("UkVU "));
    assert_eq!(
        parse_oned_line("RETRY -1 a b c")
            .publish_content()
            .as_deref(),
        Some("a b")
    );
    assert_eq!(parse_oned_line("EXECUTE -1").publish_content(), None);
    assert_eq!(
        parse_oned_line("BOGUS x y"),
        OnedLine::Undefined("BOGUS x y".into())
    );
    assert_eq!(parse_oned_line("  \n"), OnedLine::Undefined(String::new()));
}

#[test]
fn delivery_acknowledgement_lines() {
    assert_eq!(oned_execute_line_with_id(7, "QUJD"), "EXECUTE  7 QUJD");
    assert_eq!(oned_retry_line_with_id(8, "QUJD"), "RETRY  8 QUJD");
    assert_eq!(
        parse_oned_line(&oned_execute_line_with_id(7, "QUJD")),
        OnedLine::Execute {
            id: 7,
            payload: "QUJD".into()
        }
    );
    assert!(matches!(
        parse_oned_line("EXECUTE  x QUJD"),
        OnedLine::Execute { id: -1, .. }
    ));
    assert_eq!(journaled_line(42), "JOURNALED SUCCESS 42 -");
    assert_eq!(parse_journaled_line("JOURNALED SUCCESS 42 -\n"), Some(42));
    for other in [
        "JOURNALED FAILURE 42 -",
        "JOURNALED SUCCESS 0 -",
        "JOURNALED SUCCESS x -",
        "EXECUTE SUCCESS 42 0 QUJD",
        "",
    ] {
        assert_eq!(parse_journaled_line(other), None, "{other:?}");
    }
    // oned-lite's reader sees it as undefined unless it looks for it first.
    assert!(matches!(
        parse_driver_line(&journaled_line(1)),
        DriverLine::Undefined(_)
    ));
}

#[test]
fn oned_event_lines_have_the_double_space_of_an_empty_status() {
    assert_eq!(oned_execute_line("QUJD"), "EXECUTE  -1 QUJD");
    assert_eq!(oned_retry_line("QUJD"), "RETRY  -1 QUJD");
}

#[test]
fn driver_lines_round_trip() {
    let lines = [
        DriverLine::InitSuccess,
        DriverLine::result(3, 0, "QUJD"),
        DriverLine::result(3, 1, "QUJD"),
        DriverLine::error("something broke"),
    ];
    assert_eq!(lines[0].to_line(), "INIT SUCCESS - -");
    assert_eq!(lines[1].to_line(), "EXECUTE SUCCESS 3 0 QUJD");
    assert_eq!(lines[2].to_line(), "EXECUTE FAILURE 3 1 QUJD");
    assert_eq!(lines[3].to_line(), "LOG E 0 something broke");
    for line in lines {
        assert_eq!(parse_driver_line(&line.to_line()), line);
    }
    assert_eq!(
        DriverLine::error("two\nlines").to_line(),
        "LOG E 0 two lines"
    );
}

#[test]
fn oned_reads_a_non_integer_rc_as_zero_with_an_empty_body() {
    assert_eq!(
        parse_driver_line("EXECUTE SUCCESS 4 abc QUJD\n"),
        DriverLine::Result {
            success: true,
            hook_id: 4,
            rc: 0,
            body: String::new()
        }
    );
    assert!(matches!(
        parse_driver_line("EXECUTE SUCCESS x 0 QUJD"),
        DriverLine::Undefined(_)
    ));
    assert!(matches!(
        parse_driver_line("execute SUCCESS 1 0 QUJD"),
        DriverLine::Undefined(_)
    ));
    assert_eq!(
        parse_driver_line("INIT FAILURE - no sockets"),
        DriverLine::InitFailure("no sockets".into())
    );
}

#[test]
fn result_frames_are_parsed_strictly() {
    let ok = ResultFrame::parse(b"0 3 PEFSR1VNRU5UUz4=").expect("valid");
    assert_eq!(
        ok,
        ResultFrame {
            rc: 0,
            hook_id: 3,
            body: "PEFSR1VNRU5UUz4=".into()
        }
    );
    assert_eq!(ok.to_frame(), "0 3 PEFSR1VNRU5UUz4=");
    assert_eq!(
        ok.to_driver_line().to_line(),
        "EXECUTE SUCCESS 3 0 PEFSR1VNRU5UUz4="
    );
    // Whitespace runs and a trailing newline are tolerated, negative rcs accepted.
    let neg = ResultFrame::parse(b" -1\t 12  QUJD\n").expect("valid");
    assert_eq!((neg.rc, neg.hook_id), (-1, 12));
    assert_eq!(neg.to_driver_line().to_line(), "EXECUTE FAILURE 12 -1 QUJD");

    type Case<'a> = (&'a [u8], fn(&FrameError) -> bool);
    let cases: [Case<'_>; 9] = [
        (b"", |e| matches!(e, FrameError::WordCount { words: 0 })),
        (b"0 3", |e| matches!(e, FrameError::WordCount { words: 2 })),
        (b"0 3 QUJD QUJD", |e| {
            matches!(e, FrameError::WordCount { words: 4 })
        }),
        (b"abc 3 QUJD", |e| matches!(e, FrameError::BadRc { .. })),
        (b"12x 3 QUJD", |e| matches!(e, FrameError::BadRc { .. })),
        (b"0 -3 QUJD", |e| matches!(e, FrameError::BadHookId { .. })),
        (b"0 99999999999999999999 QUJD", |e| {
            matches!(e, FrameError::BadHookId { .. })
        }),
        (b"0 3 QUJ", |e| matches!(e, FrameError::BadBody { .. })),
        (b"0 3 \xff\xfe", |e| matches!(e, FrameError::NotText)),
    ];
    for (frame, expected) in cases {
        let err = ResultFrame::parse(frame).expect_err("malformed");
        assert!(expected(&err), "{frame:?} gave {err:?}");
    }
    let long = ResultFrame::parse(format!("{} 1 QUJD", "9".repeat(100)).as_bytes())
        .expect_err("rc too long");
    assert!(err_is_short(&err_frame(&long.to_string())));
}

fn err_is_short(frame: &str) -> bool {
    frame.len() < 120
}

#[test]
fn execution_uid_is_read_from_the_body() {
    use base64::Engine as _;
    let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let with = ResultFrame {
        rc: 0,
        hook_id: 1,
        body: enc("<ARGUMENTS></ARGUMENTS><EXECUTION_UID> u-1 </EXECUTION_UID>"),
    };
    assert_eq!(with.execution_uid().as_deref(), Some("u-1"));
    let without = ResultFrame {
        rc: 0,
        hook_id: 1,
        body: enc("<ARGUMENTS></ARGUMENTS>"),
    };
    assert_eq!(without.execution_uid(), None);
    // Parsing a frame reads the same uid from the one decoding of its body.
    for (frame, uid) in [(&with, Some("u-1")), (&without, None)] {
        let (parsed, read) = ResultFrame::parse_with_uid(frame.to_frame().as_bytes()).unwrap();
        assert_eq!(&parsed, frame);
        assert_eq!(read.as_deref(), uid);
        let (parsed, read, body) =
            ResultFrame::parse_with_uid_and_body(frame.to_frame().as_bytes()).unwrap();
        assert_eq!(&parsed, frame);
        assert_eq!(read.as_deref(), uid);
        assert_eq!(enc(std::str::from_utf8(&body).unwrap()), frame.body);
    }
    let cases = [
        ("<EXECUTION_UID></EXECUTION_UID>", None),
        ("<EXECUTION_UID>   </EXECUTION_UID>", None),
        (
            "<EXECUTION_UID>a</EXECUTION_UID><EXECUTION_UID>b</EXECUTION_UID>",
            Some("a"),
        ),
        ("<EXECUTION_UID>open only", None),
        (
            "</EXECUTION_UID><EXECUTION_UID>x</EXECUTION_UID>",
            Some("x"),
        ),
    ];
    for (body, uid) in cases {
        let frame = ResultFrame {
            rc: 0,
            hook_id: 1,
            body: enc(body),
        };
        assert_eq!(frame.execution_uid().as_deref(), uid, "{body}");
    }
    let long = format!("<EXECUTION_UID>{}</EXECUTION_UID>", "u".repeat(257));
    let frame = ResultFrame {
        rc: 0,
        hook_id: 1,
        body: enc(&long),
    };
    assert_eq!(frame.execution_uid(), None);
    // Not UTF-8 inside the element: no uid.
    let raw = [
        b"<EXECUTION_UID>".as_slice(),
        &[0xff, 0xfe],
        b"</EXECUTION_UID>",
    ]
    .concat();
    let frame = ResultFrame {
        rc: 0,
        hook_id: 1,
        body: base64::engine::general_purpose::STANDARD.encode(raw),
    };
    assert_eq!(frame.execution_uid(), None);
}

#[test]
fn replay_frames_round_trip_and_refuse_garbage() {
    let req = ReplayRequest {
        after: 41,
        max: 500,
    };
    assert_eq!(req.to_frame(), "REPLAY 41 500");
    assert_eq!(ReplayRequest::parse(req.to_frame().as_bytes()), Ok(req));
    for bad in [
        &b"REPLAY"[..],
        b"REPLAY 1",
        b"REPLAY -1 5",
        b"REPLAY 1 5 6",
        b"replay 1 5",
        b"REPLAY 1 99999999999",
        b"\xff",
    ] {
        assert!(
            matches!(ReplayRequest::parse(bad), Err(ReplayError::Malformed(_))),
            "{bad:?}"
        );
    }
    let head = ReplayHeader {
        oldest: 1,
        head: 99,
        count: 10,
    };
    assert_eq!(head.to_frame(), "OK 1 99 10");
    assert_eq!(ReplayHeader::parse(head.to_frame().as_bytes()), Ok(head));
    assert_eq!(
        ReplayHeader::parse(err_frame("bad request").as_bytes()),
        Err(ReplayError::Refused("bad request".into()))
    );
    assert!(ReplayHeader::parse(b"OK 1 2").is_err());
}
