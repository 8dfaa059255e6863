//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` once per
//! family, then its samples; label values and help texts escaped as the format requires.

use std::fmt::Write as _;

use crate::instruments::Histogram;

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A scrape's text, built family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_value(value));
        self.out.push('\n');
    }

    /// A counter family with one unlabelled sample. `name` ends in `_total`.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, Kind::Counter, help);
        self.sample(name, &[], value as f64);
    }

    /// Counter families with one unlabelled sample each: `(name, help, value)`.
    pub fn counters(&mut self, list: &[(&str, &str, u64)]) {
        for (name, help, value) in list {
            self.counter(name, help, *value);
        }
    }

    /// A gauge family with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, Kind::Gauge, help);
        self.sample(name, &[], value);
    }

    /// A histogram family with one unlabelled series: `_bucket{le=...}` cumulative up to
    /// `+Inf`, then `_sum` and `_count` (equal to the `+Inf` bucket).
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, Kind::Histogram, help);
        let (buckets, count, sum) = h.snapshot();
        let bucket = format!("{name}_bucket");
        for (le, n) in buckets {
            self.sample(&bucket, &[("le", &format_value(le))], n as f64);
        }
        self.sample(&bucket, &[("le", "+Inf")], count as f64);
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], count as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Help text: backslash and line feed escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label value: backslash, double quote and line feed escaped.
fn escape_label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `ParseFloat` forms: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::new();
        e.family("one_x_info", Kind::Gauge, "a \\ help\nwith two lines");
        e.sample(
            "one_x_info",
            &[("host", "h1"), ("error", "say \"no\"\nat C:\\dir")],
            1.0,
        );
        assert_eq!(
            e.finish(),
            "# HELP one_x_info a \\\\ help\\nwith two lines\n\
             # TYPE one_x_info gauge\n\
             one_x_info{host=\"h1\",error=\"say \\\"no\\\"\\nat C:\\\\dir\"} 1\n"
        );
    }

    #[test]
    fn histogram_has_cumulative_buckets_inf_sum_and_count() {
        static BOUNDS: &[f64] = &[0.005, 0.5, 2.0];
        let h = Histogram::new(BOUNDS);
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(300));
        h.observe(Duration::from_millis(400));
        h.observe(Duration::from_secs(3));
        let mut e = Exposition::new();
        e.histogram("one_d_seconds", "Durations.", &h);
        assert_eq!(
            e.finish(),
            "# HELP one_d_seconds Durations.\n\
             # TYPE one_d_seconds histogram\n\
             one_d_seconds_bucket{le=\"0.005\"} 1\n\
             one_d_seconds_bucket{le=\"0.5\"} 3\n\
             one_d_seconds_bucket{le=\"2\"} 3\n\
             one_d_seconds_bucket{le=\"+Inf\"} 4\n\
             one_d_seconds_sum 3.701\n\
             one_d_seconds_count 4\n"
        );
    }

    #[test]
    fn values_use_the_formats_prometheus_parses() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(-2.0), "-2");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1e21), "1000000000000000000000");
    }
}
