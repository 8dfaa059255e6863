//! The command-line tools' tests, one binary: rendering against recorded references and the
//! tools against a real oned-lite.

mod cloud_tools_oned;
mod common;
mod onehook_oned;
mod render_golden;
mod walkthrough;
