//! A real OpenSSH sshd per fake host (being written).
