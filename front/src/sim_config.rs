//! The simulation delays, read from `SIM = [ … ]` in oned.conf.
//!
//! ```text
//! SIM = [
//!     PROLOG_DELAY_MS   = 30,   # PROLOG, PROLOG_RESUME, PROLOG_UNDEPLOY
//!     BOOT_DELAY_MS     = 30,   # BOOT and every BOOT_* state
//!     SHUTDOWN_DELAY_MS = 30,   # SHUTDOWN, SHUTDOWN_POWEROFF, SHUTDOWN_UNDEPLOY
//!     SAVE_DELAY_MS     = 30,   # SAVE_STOP, SAVE_SUSPEND
//!     EPILOG_DELAY_MS   = 30,   # EPILOG, EPILOG_STOP, EPILOG_UNDEPLOY
//!     SCHED_DELAY_MS    = 30,   # a resumed STOPPED/UNDEPLOYED VM waits this long in PENDING
//!     MONITOR_DELAY_MS  = 30,   # a host waits this long in INIT before it is MONITORED
//!     REBOOT_DELAY_MS   = 300,  # default down time of one.hostsim.reboot
//!     IMAGE_DELAY_MS    = 30 ]  # image LOCKED -> READY, and DELETE -> removed
//! ```
//!
//! Every key is optional; zero is allowed (the transition then happens as soon as the timer
//! task sees it, still as its own persisted step with its own event).

use std::time::Duration;

use one_proto::template::Template;

/// The longest delay accepted (one hour): anything longer is a typo.
const MAX_DELAY_MS: u64 = 3_600_000;

/// The delays of the simulated drivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimConfig {
    pub prolog: Duration,
    pub boot: Duration,
    pub shutdown: Duration,
    pub save: Duration,
    pub epilog: Duration,
    pub sched: Duration,
    pub monitor: Duration,
    pub reboot: Duration,
    pub image: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        let ms = Duration::from_millis;
        SimConfig {
            prolog: ms(30),
            boot: ms(30),
            shutdown: ms(30),
            save: ms(30),
            epilog: ms(30),
            sched: ms(30),
            monitor: ms(30),
            reboot: ms(300),
            image: ms(30),
        }
    }
}

/// One problem with the SIM attribute, with the key it concerns.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration key {key}: {message}")]
pub struct SimConfigError {
    pub key: String,
    pub message: String,
}

impl SimConfig {
    /// Reads `SIM` from the parsed oned.conf; every problem is reported at once.
    pub fn from_template(raw: &Template) -> Result<SimConfig, Vec<SimConfigError>> {
        let mut config = SimConfig::default();
        let mut problems = Vec::new();
        let count = raw.attributes().iter().filter(|a| a.name == "SIM").count();
        if count == 0 {
            return Ok(config);
        }
        if count > 1 {
            problems.push(SimConfigError {
                key: "SIM".into(),
                message: "given more than once".into(),
            });
        }
        let Some(pairs) = raw.get_vector("SIM") else {
            problems.push(SimConfigError {
                key: "SIM".into(),
                message: "must be a vector attribute ( SIM = [ KEY = value, … ] )".into(),
            });
            return Err(problems);
        };
        for (key, value) in pairs {
            let slot = match key.to_ascii_uppercase().as_str() {
                "PROLOG_DELAY_MS" => &mut config.prolog,
                "BOOT_DELAY_MS" => &mut config.boot,
                "SHUTDOWN_DELAY_MS" => &mut config.shutdown,
                "SAVE_DELAY_MS" => &mut config.save,
                "EPILOG_DELAY_MS" => &mut config.epilog,
                "SCHED_DELAY_MS" => &mut config.sched,
                "MONITOR_DELAY_MS" => &mut config.monitor,
                "REBOOT_DELAY_MS" => &mut config.reboot,
                "IMAGE_DELAY_MS" => &mut config.image,
                _ => {
                    problems.push(SimConfigError {
                        key: format!("SIM/{key}"),
                        message: "unknown key".into(),
                    });
                    continue;
                }
            };
            match value.trim().parse::<u64>() {
                Ok(ms) if ms <= MAX_DELAY_MS => *slot = Duration::from_millis(ms),
                _ => problems.push(SimConfigError {
                    key: format!("SIM/{key}"),
                    message: format!(
                        "not a number of milliseconds between 0 and {MAX_DELAY_MS}: {value:?}"
                    ),
                }),
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Every delay zero: each transition happens as soon as the timer task runs.
    pub fn immediate() -> SimConfig {
        let zero = Duration::ZERO;
        SimConfig {
            prolog: zero,
            boot: zero,
            shutdown: zero,
            save: zero,
            epilog: zero,
            sched: zero,
            monitor: zero,
            reboot: zero,
            image: zero,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_keeps_defaults() {
        let t = Template::parse("SIM = [ PROLOG_DELAY_MS = 0, boot_delay_ms = 12 ]").unwrap();
        let c = SimConfig::from_template(&t).unwrap();
        assert_eq!(c.prolog, Duration::ZERO);
        assert_eq!(c.boot, Duration::from_millis(12));
        assert_eq!(c.epilog, SimConfig::default().epilog);
        assert_eq!(
            SimConfig::from_template(&Template::new()).unwrap(),
            SimConfig::default()
        );
    }

    #[test]
    fn reports_every_problem() {
        let t =
            Template::parse("SIM = [ PROLOG_DELAY_MS = -1, NOPE = 1, BOOT_DELAY_MS = 99999999 ]")
                .unwrap();
        let keys: Vec<String> = SimConfig::from_template(&t)
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(keys.contains(&"SIM/NOPE".to_string()));
        let t = Template::parse("SIM = 5").unwrap();
        assert_eq!(SimConfig::from_template(&t).unwrap_err()[0].key, "SIM");
    }
}
