//! The metrics address: parsed when the configuration is read, bound before the daemon starts
//! its work, so a bad one is an error at start.

use std::net::{SocketAddr, TcpListener};

/// A metrics address that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("must be IP:PORT such as 127.0.0.1:9926 or [::1]:9926, got {0:?}")]
    Syntax(String),
    #[error("cannot listen on {addr} for metrics: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// `IP:PORT` (`[IPv6]:PORT`), surrounding white space ignored. Host names are refused: the
/// endpoint exposes operational data, so the operator names the interface exactly.
pub fn parse_listen(s: &str) -> Result<SocketAddr, ListenError> {
    s.trim()
        .parse::<SocketAddr>()
        .map_err(|_| ListenError::Syntax(s.to_string()))
}

/// Binds the metrics listener.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr).map_err(|source| ListenError::Bind { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_an_ip_and_a_port() {
        assert_eq!(
            parse_listen(" 127.0.0.1:9926 ").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 9926)))
        );
        assert!(parse_listen("[::1]:80").is_ok());
        for bad in [
            "",
            "localhost:9926",
            "127.0.0.1",
            "127.0.0.1:99999",
            ":9926",
            "tcp://1.2.3.4:5",
        ] {
            let e = parse_listen(bad).err().map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.starts_with("must be IP:PORT")),
                "{bad:?}: {e:?}"
            );
        }
    }

    #[test]
    fn an_address_in_use_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(addr).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot listen on {addr} for metrics: ")),
            "{e}"
        );
    }
}
