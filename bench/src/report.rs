//! Collects figures (several runs each) and writes them as Markdown and JSON.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::Scale;

/// What a figure is compared with; the verdict is taken on the median.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Goal {
    /// The median must be at least this.
    AtLeast(f64),
    /// The median must be below this.
    Below(f64),
    /// The median must be at most this.
    AtMost(f64),
    /// The median must be exactly this.
    Exactly(f64),
}

impl Goal {
    pub fn met(self, v: f64) -> bool {
        match self {
            Goal::AtLeast(t) => v >= t,
            Goal::Below(t) => v < t,
            Goal::AtMost(t) => v <= t,
            Goal::Exactly(t) => v == t,
        }
    }

    pub fn text(self) -> String {
        match self {
            Goal::AtLeast(t) => format!("≥ {}", fmt(t)),
            Goal::Below(t) => format!("< {}", fmt(t)),
            Goal::AtMost(t) => format!("≤ {}", fmt(t)),
            Goal::Exactly(t) => format!("= {}", fmt(t)),
        }
    }
}

/// One measured quantity over several runs.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub section: String,
    pub name: String,
    pub unit: String,
    pub runs: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub note: String,
    /// The target, if the issue sets one.
    pub goal: Option<Goal>,
    /// Whether the median meets the goal.
    pub met: Option<bool>,
    /// The reference implementation's figure (anchors.md), for context.
    pub reference: Option<String>,
}

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory_gib: f64,
    kernel: String,
    date: String,
    /// /proc/loadavg when the suite started and when it ended: other work on the machine.
    load_start: String,
    load_end: String,
}

/// A section of the report: its method paragraph and how busy the machine was while it ran.
#[derive(Clone, Debug, Serialize)]
struct Section {
    name: String,
    method: String,
    /// The 1-minute load average read when the section started, whenever one of its figures
    /// was recorded, and when it ended, in that order.
    load: Vec<f64>,
}

impl Section {
    /// One sentence on the load while the section ran, or nothing if none could be read.
    fn load_text(&self) -> Option<String> {
        let (first, last) = (self.load.first()?, self.load.last()?);
        let min = self.load.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.load.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(format!(
            "Load average (1 minute, /proc/loadavg) while this section ran: {first:.2} at its \
             start, {last:.2} at its end, {min:.2} to {max:.2} over {} readings (one as each \
             figure was recorded).",
            self.load.len()
        ))
    }
}

pub struct Report {
    scale: Scale,
    figures: Vec<Figure>,
    notes: Vec<(String, String)>,
    /// Sections introduced in order.
    sections: Vec<Section>,
    failures: Vec<(String, String)>,
    load_start: String,
    started: std::time::Instant,
}

/// The value at quantile `q` (0..=1) of `sorted` (nearest rank).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The 1-minute load average in the text of /proc/loadavg.
fn load_1min(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// The machine's 1-minute load average now, if /proc/loadavg can be read.
fn load_now() -> Option<f64> {
    load_1min(&fs::read_to_string("/proc/loadavg").ok()?)
}

pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The heading of the report's hand-written last section, which runs keep.
pub const KEPT_HEADING: &str = "## Design measurements";

/// The hand-written last section of a report, from its heading on, if it has one.
fn kept_tail(report: &str) -> Option<&str> {
    report
        .match_indices(&format!("\n{KEPT_HEADING}\n"))
        .next()
        .map(|(at, _)| &report[at + 1..])
}

impl Report {
    pub fn new(scale: Scale) -> Report {
        Report {
            scale,
            figures: Vec::new(),
            notes: Vec::new(),
            sections: Vec::new(),
            failures: Vec::new(),
            load_start: loadavg(),
            started: std::time::Instant::now(),
        }
    }

    /// Opens a section with its method paragraph (what is measured from where to where).
    pub fn section(&mut self, section: &str, method: &str) {
        println!("== {section}");
        if !self.sections.iter().any(|s| s.name == section) {
            self.sections.push(Section {
                name: section.into(),
                method: method.into(),
                load: Vec::new(),
            });
        }
        self.read_load(section);
    }

    /// Marks the end of a section (completed or not): the last load reading.
    pub fn end_section(&mut self, section: &str) {
        self.read_load(section);
    }

    fn read_load(&mut self, section: &str) {
        if let (Some(s), Some(load)) = (
            self.sections.iter_mut().find(|s| s.name == section),
            load_now(),
        ) {
            s.load.push(load);
        }
    }

    /// Records that a section could not be completed.
    pub fn failed(&mut self, section: &str, error: &anyhow::Error) {
        println!("{section}: FAILED: {error:#}");
        self.failures.push((section.into(), format!("{error:#}")));
    }

    pub fn has_failures(&self) -> bool {
        !self.failures.is_empty()
    }

    /// Sets the target of the figure added last.
    pub fn goal(&mut self, goal: Goal) {
        if let Some(f) = self.figures.last_mut() {
            f.goal = Some(goal);
            f.met = f.median.is_finite().then(|| goal.met(f.median));
            println!(
                "    target {}: {}",
                goal.text(),
                if f.met == Some(true) { "met" } else { "MISSED" }
            );
        }
    }

    /// Sets the reference figure (anchors.md) of the figure added last.
    pub fn reference(&mut self, text: &str) {
        if let Some(f) = self.figures.last_mut() {
            f.reference = Some(text.into());
        }
    }

    /// Records a figure; returns its median.
    pub fn add(
        &mut self,
        section: &str,
        name: &str,
        unit: &str,
        runs: Vec<f64>,
        note: &str,
    ) -> f64 {
        let finite: Vec<f64> = runs.iter().copied().filter(|x| x.is_finite()).collect();
        let med = median(&finite);
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "{section} / {name}: {} {unit} (min {} max {})",
            fmt(med),
            fmt(min),
            fmt(max)
        );
        self.figures.push(Figure {
            section: section.into(),
            name: name.into(),
            unit: unit.into(),
            runs,
            median: med,
            min,
            max,
            note: note.into(),
            goal: None,
            met: None,
            reference: None,
        });
        self.read_load(section);
        med
    }

    /// A paragraph printed under a section's table (method, durability, ratios).
    pub fn note(&mut self, section: &str, text: &str) {
        self.notes.push((section.into(), text.into()));
    }

    fn machine() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        let date = std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            load_start: String::new(),
            load_end: loadavg(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel,
            date,
        }
    }

    pub fn markdown(&self) -> String {
        let mut m = Self::machine();
        m.load_start = self.load_start.clone();
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(
            out,
            "Produced by `scripts/bench{}` on {}: {} CPUs ({}), {} GiB, Linux {}. \
             {}; every process is the real binary, talking over loopback. Each \
             figure is the median of {} run(s), with the min-max over the runs; targets are \
             judged on the median. The whole suite took {:.0} s.\n",
            if self.scale.quick { " --quick" } else { "" },
            m.date,
            m.cpus,
            m.cpu_model,
            m.memory_gib,
            m.kernel,
            if cfg!(debug_assertions) {
                "Debug build (a smoke run of the suite: its figures say nothing of the system)"
            } else {
                "Release build"
            },
            self.scale.runs,
            self.started.elapsed().as_secs_f64(),
        );
        let _ = writeln!(
            out,
            "The machine is shared: load average {} at the start and {} at the end (1, 5 and \
             15 minutes), and each section gives the load while it ran. Absolute times drift with \
             that load, which is why the local figures are also given as a ratio of the \
             fork/exec ceiling measured just before each of them.\n",
            m.load_start, m.load_end
        );
        let _ = writeln!(
            out,
            "Reproduce with `scripts/bench` (about a quarter of an hour; `--quick` for a smoke \
             run), or one section with `target/release/one-bench <section>`.\n"
        );
        if !self.failures.is_empty() {
            let _ = writeln!(out, "**Sections that could not complete:**\n");
            for (section, error) in &self.failures {
                let _ = writeln!(out, "- {section}: {}", error.replace('\n', " "));
            }
            out.push('\n');
        }
        let goals: Vec<&Figure> = self.figures.iter().filter(|f| f.goal.is_some()).collect();
        if !goals.is_empty() {
            let _ = writeln!(out, "## Targets\n");
            let _ = writeln!(out, "| section | measure | median | target | verdict |");
            let _ = writeln!(out, "|---|---|---:|---|---|");
        }
        for f in goals {
            let _ = writeln!(
                out,
                "| {} | {} | {} {} | {} | {} |",
                f.section,
                f.name,
                fmt(f.median),
                f.unit,
                f.goal.map(Goal::text).unwrap_or_default(),
                verdict(f)
            );
        }
        out.push('\n');
        let mut sections: Vec<Section> = self.sections.clone();
        for f in &self.figures {
            if !sections.iter().any(|s| s.name == f.section) {
                sections.push(Section {
                    name: f.section.clone(),
                    method: String::new(),
                    load: Vec::new(),
                });
            }
        }
        for s in &sections {
            let section = &s.name;
            let _ = writeln!(out, "## {section}\n");
            if !s.method.is_empty() {
                let _ = writeln!(out, "{}\n", s.method);
            }
            if let Some(load) = s.load_text() {
                let _ = writeln!(out, "{load}\n");
            }
            let figures: Vec<&Figure> = self
                .figures
                .iter()
                .filter(|f| f.section == *section)
                .collect();
            if !figures.is_empty() {
                let _ = writeln!(
                    out,
                    "| measure | median | min-max | unit | target | verdict | reference | note |"
                );
                let _ = writeln!(out, "|---|---:|---:|---|---|---|---|---|");
                for f in figures {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} - {} | {} | {} | {} | {} | {} |",
                        f.name,
                        fmt(f.median),
                        fmt(f.min),
                        fmt(f.max),
                        f.unit,
                        f.goal.map(Goal::text).unwrap_or_default(),
                        verdict(f),
                        f.reference.as_deref().unwrap_or(""),
                        f.note
                    );
                }
                out.push('\n');
            }
            for (_, text) in self.notes.iter().filter(|(s, _)| s == section) {
                let _ = writeln!(out, "{text}\n");
            }
            for (_, error) in self.failures.iter().filter(|(s, _)| s == section) {
                let _ = writeln!(out, "**Not completed:** {}\n", error.replace('\n', " "));
            }
        }
        out
    }

    pub fn write(&self, md: &Path, json: &Path) -> Result<()> {
        for path in [md, json] {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        // The hand-written part at the end (design measurements: figures behind choices made
        // in the code) is not produced by a run, so a run keeps it.
        let kept = fs::read_to_string(md)
            .ok()
            .and_then(|old| kept_tail(&old).map(str::to_string));
        let mut text = self.markdown();
        if let Some(tail) = kept {
            text.push_str(&tail);
        }
        fs::write(md, text).with_context(|| format!("writing {}", md.display()))?;
        let mut machine = Self::machine();
        machine.load_start = self.load_start.clone();
        let doc = serde_json::json!({
            "machine": machine,
            "quick": self.scale.quick,
            "runs": self.scale.runs,
            "duration_s": self.started.elapsed().as_secs_f64(),
            "sections": self.sections,
            "figures": self.figures,
            "notes": self.notes,
            "failures": self.failures,
        });
        fs::write(json, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        Ok(())
    }
}

fn verdict(f: &Figure) -> &'static str {
    match f.met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None if f.goal.is_some() => "n/a",
        None => "",
    }
}

/// Three significant digits below 1,000, whole numbers with thousands separators above.
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 1000.0 || (v.fract() == 0.0 && a < 1e15) {
        return group(v.round() as i64);
    }
    if a >= 100.0 {
        format!("{:.1}", v)
    } else if a >= 1.0 {
        format!("{:.2}", v)
    } else {
        format!("{:.3}", v)
    }
}

fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_section_is_found_only_under_its_own_heading() {
        let report = "# Benchmarks\n\n## 1. Ceiling\n\nx\n\n## Design measurements\n\nmimalloc\n";
        assert_eq!(
            kept_tail(report),
            Some("## Design measurements\n\nmimalloc\n")
        );
        assert_eq!(
            kept_tail("# Benchmarks\n\n## Design measurements are\n"),
            None
        );
        assert_eq!(kept_tail(""), None);
    }

    #[test]
    fn the_one_minute_load_is_the_first_field_of_proc_loadavg() {
        assert_eq!(load_1min("2.06 2.78 7.27 3/512 12345\n"), Some(2.06));
        assert_eq!(load_1min(""), None);
        assert_eq!(load_1min("busy 1 2"), None);
    }

    #[test]
    fn each_section_states_the_load_read_while_it_ran() {
        let mut report = Report::new(Scale {
            quick: true,
            runs: 1,
        });
        report.section("1. A", "method");
        report.add("1. A", "x", "s", vec![1.0], "");
        report.end_section("1. A");
        let readings = report.sections[0].load.len();
        assert_eq!(readings, 3, "start, one figure, end");
        report.sections[0].load = vec![1.5, 4.25, 0.5];
        let text = report.markdown();
        let at = text.find("## 1. A").expect("the section is in the report");
        assert!(
            text[at..].contains("1.50 at its start, 0.50 at its end, 0.50 to 4.25 over 3 readings"),
            "{text}"
        );
        report.sections[0].load.clear();
        assert!(!report.markdown().contains("while this section ran"));
    }
}
