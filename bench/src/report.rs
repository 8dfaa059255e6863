//! Collects figures (several runs each) and writes them as Markdown and JSON.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::Scale;

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
}

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory_gib: f64,
    kernel: String,
    date: String,
}

pub struct Report {
    scale: Scale,
    figures: Vec<Figure>,
    notes: Vec<(String, String)>,
}

pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

impl Report {
    pub fn new(scale: Scale) -> Report {
        Report { scale, figures: Vec::new(), notes: Vec::new() }
    }

    /// Records a figure; returns its median.
    pub fn add(&mut self, section: &str, name: &str, unit: &str, runs: Vec<f64>, note: &str) -> f64 {
        let finite: Vec<f64> = runs.iter().copied().filter(|x| x.is_finite()).collect();
        let med = median(&finite);
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!("{section} / {name}: {} {unit} (min {} max {})", fmt(med), fmt(min), fmt(max));
        self.figures.push(Figure {
            section: section.into(),
            name: name.into(),
            unit: unit.into(),
            runs,
            median: med,
            min,
            max,
            note: note.into(),
        });
        med
    }

    /// A paragraph printed under a section's table (method, durability, ratios).
    pub fn note(&mut self, section: &str, text: &str) {
        self.notes.push((section.into(), text.into()));
    }

    pub fn median_of(&self, section: &str, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.section == section && f.name == name)
            .map(|f| f.median)
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
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model,
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel,
            date,
        }
    }

    pub fn markdown(&self) -> String {
        let m = Self::machine();
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(
            out,
            "Produced by `scripts/bench`{} on {}: {} CPUs ({}), {} GiB, Linux {}. \
             Every figure is the median of {} run(s) with the min-max; release build; real \
             processes on loopback.\n",
            if self.scale.quick { " --quick" } else { "" },
            m.date,
            m.cpus,
            m.cpu_model,
            m.memory_gib,
            m.kernel,
            self.scale.runs
        );
        let mut sections: Vec<&str> = Vec::new();
        for f in &self.figures {
            if !sections.contains(&f.section.as_str()) {
                sections.push(&f.section);
            }
        }
        for section in sections {
            let _ = writeln!(out, "## {section}\n");
            let _ = writeln!(out, "| measure | median | min-max | unit | note |");
            let _ = writeln!(out, "|---|---:|---:|---|---|");
            for f in self.figures.iter().filter(|f| f.section == section) {
                let _ = writeln!(
                    out,
                    "| {} | {} | {}-{} | {} | {} |",
                    f.name,
                    fmt(f.median),
                    fmt(f.min),
                    fmt(f.max),
                    f.unit,
                    f.note
                );
            }
            out.push('\n');
            for (_, text) in self.notes.iter().filter(|(s, _)| s == section) {
                let _ = writeln!(out, "{text}\n");
            }
        }
        out
    }

    pub fn write(&self, md: &Path, json: &Path) -> Result<()> {
        fs::write(md, self.markdown()).with_context(|| format!("writing {}", md.display()))?;
        let doc = serde_json::json!({
            "machine": Self::machine(),
            "quick": self.scale.quick,
            "runs": self.scale.runs,
            "figures": self.figures,
        });
        fs::write(json, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", json.display()))?;
        Ok(())
    }
}

/// Three significant digits, without exponent for the magnitudes we report.
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        format!("{:.0}", v)
    } else if a >= 100.0 {
        format!("{:.1}", v)
    } else if a >= 1.0 {
        format!("{:.2}", v)
    } else {
        format!("{:.3}", v)
    }
}
