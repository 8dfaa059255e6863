//! Reading the driver's stdout: bounded lines, sorted into results, acknowledgements and
//! log lines.

use one_proto::mad::{DriverLine, parse_driver_line, parse_forwarded_line, parse_journaled_line};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::{mpsc, watch};

use super::MAX_LINE;

/// One line of a driver's output, at most `max` bytes (longer lines are skipped with a
/// warning); `None` at end of file. The LF (and a CR before it) is not included.
pub(super) async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<String>> {
    buf.clear();
    let mut overlong = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            if buf.is_empty() {
                return Ok(None);
            }
            break;
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i, Some(i + 1)),
            None => (chunk.len(), None),
        };
        if !overlong {
            if buf.len() + take > max {
                overlong = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        let consumed = done.unwrap_or(take);
        reader.consume(consumed);
        if done.is_some() {
            if overlong {
                tracing::warn!(max, "dropped a driver line longer than the limit");
                overlong = false;
                continue;
            }
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    // Lines are ASCII in practice (base64 bodies): the validating copy is the fast path.
    Ok(Some(match std::str::from_utf8(buf) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(buf).into_owned(),
    }))
}

/// A result line from the driver.
pub(super) struct DriverResult {
    pub(super) success: bool,
    pub(super) hook_id: i64,
    pub(super) rc: i64,
    pub(super) body: String,
}

/// What the reader hands to the result store, in the order read.
pub(super) enum FromDriver {
    Result(DriverResult),
    /// `FORWARDED SUCCESS <id> -`: the results before it carry driver result ids up to `id`.
    Forwarded(u64),
}

/// Reads the driver's stdout until EOF: results and their `FORWARDED` markers go to the store,
/// `JOURNALED` acknowledgements to the sender (through `journaled`), the rest to the log.
pub(super) async fn read_driver<R: AsyncBufRead + Unpin>(
    mut stdout: R,
    results: mpsc::Sender<FromDriver>,
    journaled: watch::Sender<u64>,
    pid: u32,
) {
    let mut buf = Vec::new();
    loop {
        let line = match next_line(&mut stdout, &mut buf, MAX_LINE).await {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(pid, error = %e, "cannot read the driver's output");
                break;
            }
        };
        if let Some(id) = parse_journaled_line(&line) {
            journaled.send_if_modified(|v| {
                let newer = id > *v;
                *v = (*v).max(id);
                newer
            });
            continue;
        }
        if let Some(id) = parse_forwarded_line(&line) {
            if results.send(FromDriver::Forwarded(id)).await.is_err() {
                break;
            }
            continue;
        }
        match parse_driver_line(&line) {
            DriverLine::Result {
                success,
                hook_id,
                rc,
                body,
            } => {
                let result = DriverResult {
                    success,
                    hook_id,
                    rc,
                    body,
                };
                if results.send(FromDriver::Result(result)).await.is_err() {
                    break;
                }
            }
            DriverLine::Log { level, id, text } => match level {
                'E' => tracing::error!(target: "hm_mad", pid, id, "{text}"),
                'W' => tracing::warn!(target: "hm_mad", pid, id, "{text}"),
                'D' => tracing::debug!(target: "hm_mad", pid, id, "{text}"),
                _ => tracing::info!(target: "hm_mad", pid, id, "{text}"),
            },
            DriverLine::InitSuccess | DriverLine::InitFailure(_) => {
                tracing::warn!(pid, line = %line, "unexpected INIT answer from the driver")
            }
            DriverLine::Undefined(_) => tracing::warn!(pid, line = %line, "Received UNDEFINED msg"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::BufReader;

    use super::*;

    #[tokio::test]
    async fn lines_are_split_bounded_and_stripped() {
        let data: &[u8] = b"INIT SUCCESS - -\r\nLOG I 0 hello\n0123456789abcdef\nlast";
        let mut reader = BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        assert_eq!(
            next_line(&mut reader, &mut buf, 100)
                .await
                .unwrap()
                .as_deref(),
            Some("INIT SUCCESS - -")
        );
        assert_eq!(
            next_line(&mut reader, &mut buf, 100)
                .await
                .unwrap()
                .as_deref(),
            Some("LOG I 0 hello")
        );
        // The 16-byte line is over a 10-byte limit: skipped.
        assert_eq!(
            next_line(&mut reader, &mut buf, 10)
                .await
                .unwrap()
                .as_deref(),
            Some("last")
        );
        assert_eq!(next_line(&mut reader, &mut buf, 10).await.unwrap(), None);
    }
}
