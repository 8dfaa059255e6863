//! Golden tests of the renderers on the reference's sample documents (§9.1, §9.2), in UTC and
//! without a terminal, as the reference's own output was recorded.

use one_cli::exec_table::{HookColumn, render_records};
use one_cli::hook_list::render_hook_pool;
use one_cli::hook_show::render_hook;
use one_cli::table::TableOptions;
use one_cli::terminal::Terminal;
use one_cli::timestamp::Zone;
use one_cli::xml::{Element, parse};

fn doc(text: &str) -> Element {
    parse(text).expect("sample document parses")
}

fn show(xml: &str, execution: Option<i64>) -> String {
    String::from_utf8(render_hook(
        &doc(xml),
        execution,
        &Terminal::plain(),
        Zone::Utc,
    ))
    .expect("utf-8")
}

#[test]
fn list_table_without_a_terminal() {
    let out = render_hook_pool(
        &doc(include_str!("../golden/hook_pool.xml")),
        &TableOptions::default(),
        &Terminal::plain(),
    )
    .expect("renders");
    assert_eq!(out, include_str!("../golden/hook_list.out"));
}

#[test]
fn show_with_template_and_execution_log() {
    assert_eq!(
        show(include_str!("../golden/hook_info.xml"), None),
        include_str!("../golden/hook_show.out")
    );
}

#[test]
fn show_locked_hook_without_records_has_no_execution_log() {
    assert_eq!(
        show(include_str!("../golden/hook_info_locked.xml"), None),
        include_str!("../golden/hook_show_locked.out")
    );
}

#[test]
fn show_execution_record_failed() {
    assert_eq!(
        show(include_str!("../golden/hook_info.xml"), Some(0)),
        include_str!("../golden/hook_show_e0.out")
    );
}

#[test]
fn show_execution_record_succeeded() {
    assert_eq!(
        show(include_str!("../golden/hook_info.xml"), Some(1)),
        include_str!("../golden/hook_show_e1.out")
    );
}

#[test]
fn show_missing_execution_record() {
    assert_eq!(
        show(include_str!("../golden/hook_info.xml"), Some(7)),
        include_str!("../golden/hook_show_e7.out")
    );
}

#[test]
fn log_table_has_the_hook_column() {
    let log = doc(include_str!("../golden/hooklog.xml"));
    let records: Vec<&Element> = log.children_named("HOOK_EXECUTION_RECORD").collect();
    let out = render_records(&records, HookColumn::Shown, &Terminal::plain(), Zone::Utc);
    assert_eq!(out, include_str!("../golden/hook_log.out"));
}

#[test]
fn timestamps_follow_the_zone() {
    let cest = chrono::FixedOffset::east_opt(2 * 3600).expect("offset");
    let out = render_hook(
        &doc(include_str!("../golden/hook_info.xml")),
        None,
        &Terminal::plain(),
        Zone::Fixed(cest),
    );
    let out = String::from_utf8(out).expect("utf-8");
    assert!(
        out.contains("    0     09/23 17:10   255   ERROR\n"),
        "{out}"
    );
}

#[test]
fn terminal_output_is_bold_underlined_and_coloured() {
    let tty = Terminal {
        tty: true,
        width: None,
        height: None,
    };
    let out = String::from_utf8(render_hook(
        &doc(include_str!("../golden/hook_info.xml")),
        None,
        &tty,
        Zone::Utc,
    ))
    .expect("utf-8");
    let title = format!("\x1b[1m\x1b[4m{:<80}\x1b[0m\n", "HOOK 3 INFORMATION");
    assert!(out.starts_with(&title), "{out:?}");
    assert!(
        out.contains(&format!("\x1b[1m{:<80}\x1b[0m\n", "HOOK TEMPLATE")),
        "{out:?}"
    );
    assert!(out.contains("\x1b[1mEXECUTION LOG\x1b[0m\n"), "{out:?}");
    assert!(
        out.contains("\x1b[1m\x1b[4m   ID       TIMESTAMP    RC EXECUTION\x1b[0m\n"),
        "{out:?}"
    );
    assert!(
        out.contains("    0     09/23 15:10   255 \x1b[31m  ERROR\x1b[0m\n"),
        "{out:?}"
    );
    assert!(
        out.contains("    1     09/23 15:59     0 \x1b[32mSUCCESS\x1b[0m\n"),
        "{out:?}"
    );
}
