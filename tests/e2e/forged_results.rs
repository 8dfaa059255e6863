//! Forged results on the driver's results socket, sent by pyzmq as any local process could.
//!
//! Execution uids carry a tag keyed with the HEM's secret, so a forger who read an earlier
//! record (its instance and start count) and the journal head cannot take the uid of a coming
//! execution and have the genuine result dropped as its duplicate. The driver refuses results
//! whose uid names an event it never published, and with `--require-execution-uid` every result
//! without a uid of the HEM's form.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use one_e2e::stack::{LOGGER_PORT, REPLAY_PORT, Stack, StackOptions};
use one_proto::encoding::b64_encode;
use one_proto::execution_uid::{EventRef, claim};
use one_proto::hook_log::{ExecutionRecord, ExecutionResult};

const WAIT: Duration = Duration::from_secs(30);

/// Sends each frame on its own REQ round trip and prints each reply on a line.
const SENDER: &str = "import sys, zmq\n\
ctx = zmq.Context()\n\
for frame in sys.argv[2:]:\n\
\x20   s = ctx.socket(zmq.REQ)\n\
\x20   s.setsockopt(zmq.RCVTIMEO, 20000)\n\
\x20   s.setsockopt(zmq.LINGER, 0)\n\
\x20   s.connect(sys.argv[1])\n\
\x20   s.send(frame.encode())\n\
\x20   print(s.recv().decode(), flush=True)\n\
\x20   s.close()\n";

/// The replies of the driver to `frames`, in order.
fn send_results(stack: &Stack, frames: &[String]) -> Result<Vec<String>> {
    let mut args = vec![format!("tcp://{}:{LOGGER_PORT}", stack.ip)];
    args.extend_from_slice(frames);
    Ok(one_e2e::stack::run_python(SENDER, &args)?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The newest sequence number of the driver's journal, from its replay socket.
fn journal_head(stack: &Stack) -> Result<u64> {
    let script = "import sys, zmq\n\
        s = zmq.Context().socket(zmq.REQ)\n\
        s.setsockopt(zmq.RCVTIMEO, 20000)\n\
        s.connect(sys.argv[1])\n\
        s.send(b'REPLAY 0 0')\n\
        print(s.recv_multipart()[0].decode())\n";
    let out = Command::new(one_e2e::stack::python()?)
        .arg("-c")
        .arg(script)
        .arg(format!("tcp://{}:{REPLAY_PORT}", stack.ip))
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    // `OK <oldest> <head> <n>`
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["OK", _, head, _] => Ok(head.parse()?),
        _ => anyhow::bail!(
            "replay answered {text:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A result frame for `hook` that claims `uid` (none: as the reference HEM sends).
fn forged_frame(hook: i64, uid: Option<String>) -> String {
    let result = ExecutionResult {
        arguments: "forged".into(),
        command: "/bin/echo forged".into(),
        stdout: b"forged\n".to_vec(),
        stderr: Vec::new(),
        code: 0,
        remote_host: None,
        retry: false,
        execution_uid: uid,
    };
    format!("0 {hook} {}", b64_encode(result.to_xml().as_bytes()))
}

fn echo_hook(stack: &Stack) -> Result<i64> {
    Ok(stack.client().hook_allocate(
        "NAME = genuine\nTYPE = state\nCOMMAND = /bin/echo\nARGUMENTS = \"genuine $TEMPLATE\"\n\
         ON = CUSTOM\nRESOURCE = VM\nSTATE = PENDING\nLCM_STATE = LCM_INIT\n",
    )?)
}

/// The uid's origin (`<instance>-<boot>`) and event sequence number.
fn origin_and_seq(record: &ExecutionRecord) -> Result<(String, u64)> {
    let uid = record
        .result
        .as_ref()
        .and_then(|r| r.execution_uid.clone())
        .context("the record has no EXECUTION_UID")?;
    let Some(EventRef::Seq(seq)) = claim(&uid).map(|c| c.event) else {
        anyhow::bail!("uid {uid} names no event sequence");
    };
    let origin = uid
        .rsplitn(4, '-')
        .nth(3)
        .context("uid without origin")?
        .to_owned();
    Ok((origin, seq))
}

fn genuine_outputs(records: &[ExecutionRecord]) -> usize {
    records
        .iter()
        .filter_map(|r| r.result.as_ref())
        .filter(|r| r.stdout.starts_with(b"genuine "))
        .count()
}

#[test]
fn a_forged_result_cannot_take_the_uid_of_a_coming_execution() -> Result<()> {
    let stack = Stack::start_with(StackOptions::default())?;
    let hook = echo_hook(&stack)?;
    stack.vm_allocate("NAME = first\nCPU = 1\nMEMORY = 2\n")?;
    let first = stack.wait_records(hook, 1, WAIT)?;
    let (origin, _) = origin_and_seq(&first[0])?;

    // Everything a forger can learn: the origin from a record, the sequence numbers to come
    // from the journal head. The uids a HEM without a keyed tag would give the next
    // executions, and the same with a made-up tag, for the next events.
    let head = journal_head(&stack)?;
    let coming: Vec<u64> = (head + 1..=head + 6).collect();
    let untagged: Vec<String> = coming
        .iter()
        .map(|s| forged_frame(hook, Some(format!("{origin}-{s}-{hook}"))))
        .collect();
    let tagged: Vec<String> = coming
        .iter()
        .map(|s| {
            forged_frame(
                hook,
                Some(format!("{origin}-{s}-{hook}-{}", "0".repeat(24))),
            )
        })
        .collect();
    let replies = send_results(&stack, &tagged)?;
    ensure!(replies.len() == tagged.len(), "{replies:?}");
    for reply in &replies {
        ensure!(
            reply.starts_with("ERR ") && reply.contains("never published"),
            "a result for an event not yet published was taken: {reply}"
        );
    }
    // Untagged uids are not of the HEM's form: taken like the reference HEM's results.
    let replies = send_results(&stack, &untagged)?;
    ensure!(replies.iter().all(|r| r == "ACK"), "{replies:?}");
    // A result without any uid, as the reference HEM sends it, is still stored.
    ensure!(send_results(&stack, &[forged_frame(hook, None)])? == ["ACK"]);

    stack.vm_allocate("NAME = second\nCPU = 1\nMEMORY = 2\n")?;
    let expected = 1 + untagged.len() + 1 + 1;
    let records = stack.wait_records(hook, expected, WAIT)?;
    ensure!(
        genuine_outputs(&records) == 2,
        "the genuine result of the second VM is missing: {records:#?}"
    );
    // The forged results that were taken stay apart from the genuine ones: none has a tag.
    for r in records.iter().filter_map(|r| r.result.as_ref()) {
        let forged = r.stdout == b"forged\n";
        let tagged = r.execution_uid.as_deref().and_then(claim).is_some();
        ensure!(forged != tagged, "{r:?}");
    }
    Ok(())
}

#[test]
fn with_required_uids_only_results_a_hem_could_have_sent_are_stored() -> Result<()> {
    let stack = Stack::start_with(StackOptions {
        driver_extra: "--require-execution-uid".into(),
        ..StackOptions::default()
    })?;
    let hook = echo_hook(&stack)?;
    stack.vm_allocate("NAME = first\nCPU = 1\nMEMORY = 2\n")?;
    let first = stack.wait_records(hook, 1, WAIT)?;
    let (origin, seq) = origin_and_seq(&first[0])?;
    let head = journal_head(&stack)?;
    let tag = "0".repeat(24);
    let forgeries = [
        (forged_frame(hook, None), "without an EXECUTION_UID"),
        (
            forged_frame(hook, Some(format!("{origin}-{}-{hook}", seq + 1))),
            "is not of the form",
        ),
        (
            forged_frame(hook, Some(format!("{origin}-{}-{hook}-{tag}", head + 1))),
            "never published",
        ),
        (
            forged_frame(hook + 1, Some(format!("{origin}-{seq}-{hook}-{tag}"))),
            &format!("names hook {hook}"),
        ),
    ];
    let frames: Vec<String> = forgeries.iter().map(|(f, _)| f.clone()).collect();
    let replies = send_results(&stack, &frames)?;
    ensure!(replies.len() == forgeries.len(), "{replies:?}");
    for (reply, (_, why)) in replies.iter().zip(&forgeries) {
        ensure!(
            reply.starts_with("ERR ") && reply.contains(why),
            "expected a refusal that says {why:?}, got {reply:?}"
        );
    }
    stack.vm_allocate("NAME = second\nCPU = 1\nMEMORY = 2\n")?;
    let records = stack.wait_records(hook, 2, WAIT)?;
    // A moment for anything forged to arrive, had it been taken.
    std::thread::sleep(Duration::from_secs(1));
    let records_now = stack.records(hook)?;
    ensure!(
        records_now.len() == 2 && genuine_outputs(&records) == 2,
        "{records_now:#?}"
    );
    ensure!(stack.records(hook + 1)?.is_empty());
    Ok(())
}
