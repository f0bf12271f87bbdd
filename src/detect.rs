//! Detect: what a root is — its distribution, init system and network stack, and whether osconf
//! would configure it. The one account `osconf detect` prints for a directory (`/` at boot) and
//! `image check` for a disk image's root partition, both read through `System`.

use std::fmt::Write as _;

use crate::install::{self, Init};
use crate::render::{self, Detection};
use crate::status::json_string;
use crate::system::{OsRelease, System};

/// What detection found under a root; a probe that found nothing says what it looked at.
pub struct Survey {
    pub os: OsRelease,
    /// The init system that would start osconf at boot, and why it is that one.
    pub init: Result<(&'static Init, String), String>,
    /// The network stack osconf would configure.
    pub stack: Result<Detection, String>,
}

impl Survey {
    /// Runs every probe on `sys`.
    pub fn of(sys: &System) -> Survey {
        Survey {
            os: sys.os.clone(),
            init: install::detect(sys),
            stack: render::detect(sys),
        }
    }

    /// `Debian GNU/Linux 12 (ID=debian VERSION_ID=12)`, or what is missing.
    pub fn distribution(&self) -> String {
        let os = &self.os;
        if os.id.is_empty() && os.pretty_name.is_empty() {
            return "unknown (no os-release)".to_owned();
        }
        let mut ids = format!("ID={}", os.id);
        if !os.id_like.is_empty() {
            let _ = write!(ids, " ID_LIKE={}", os.id_like.join(","));
        }
        if !os.version_id.is_empty() {
            let _ = write!(ids, " VERSION_ID={}", os.version_id);
        }
        match os.pretty_name.as_str() {
            "" => ids,
            pretty => format!("{pretty} ({ids})"),
        }
    }

    /// Whether osconf would configure this system: it needs an init system to be started by at
    /// boot and a network stack to write; `Err` says which is missing.
    pub fn configurable(&self) -> Result<String, String> {
        match (&self.init, &self.stack) {
            (Ok((init, _)), Ok(d)) => Ok(format!(
                "yes: started by {}, configures {}",
                init.name, d.stack.name
            )),
            (Err(_), Err(_)) => Err("no: neither its init system nor its network stack is known".to_owned()),
            (Err(_), _) => {
                Err("no: its init system is not known (osconf install --init chooses one)".to_owned())
            }
            (_, Err(_)) => Err("no: its network stack is not known (osconf --stack chooses one)".to_owned()),
        }
    }

    /// The lines `osconf detect` prints after the root's own: distribution, init, stack, verdict.
    pub fn text(&self) -> String {
        let mut out = format!("os: {}\n", self.distribution());
        let _ = match &self.init {
            Ok((init, why)) => writeln!(out, "init: {} ({why})", init.name),
            Err(e) => writeln!(out, "init: unknown ({e})"),
        };
        match &self.stack {
            Ok(d) => {
                let _ = writeln!(out, "stack: {} ({})", d.stack.name, d.evidence);
                for (name, why) in &d.also_matched {
                    let _ = writeln!(out, "also matched: {name} ({why})");
                }
            }
            Err(e) => {
                let _ = writeln!(out, "stack: unknown ({e})");
            }
        }
        let _ = match self.configurable() {
            Ok(yes) => writeln!(out, "osconf: {yes}"),
            Err(no) => writeln!(out, "osconf: {no}"),
        };
        out
    }

    /// The survey as one JSON object: `{"distribution":{"id","id_like","version_id","pretty_name"},
    /// "init":{"name","evidence"}|null,"stack":{"name","evidence"}|null,"configurable":bool,"why"}`.
    pub fn json(&self) -> String {
        let os = &self.os;
        let ids: Vec<String> = os.id_like.iter().map(|l| json_string(l)).collect();
        let named = |found: Option<(&str, &str)>| match found {
            Some((name, why)) => format!(
                "{{\"name\":{},\"evidence\":{}}}",
                json_string(name),
                json_string(why)
            ),
            None => "null".to_owned(),
        };
        let verdict = self.configurable();
        format!(
            "{{\"distribution\":{{\"id\":{},\"id_like\":[{}],\"version_id\":{},\"pretty_name\":{}}},\
             \"init\":{},\"stack\":{},\"configurable\":{},\"why\":{}}}",
            json_string(&os.id),
            ids.join(","),
            json_string(&os.version_id),
            json_string(&os.pretty_name),
            named(self.init.as_ref().ok().map(|(i, why)| (i.name, why.as_str()))),
            named(
                self.stack
                    .as_ref()
                    .ok()
                    .map(|d| (d.stack.name, d.evidence.as_str()))
            ),
            verdict.is_ok(),
            json_string(verdict.as_ref().unwrap_or_else(|e| e)),
        )
    }
}
