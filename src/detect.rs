//! Detect: what a root is — its distribution, init system and network stack, and whether osconf
//! would configure it. The one account `osconf detect` prints for a directory (`/` at boot) and
//! `image check` for a disk image's root partition, both read through `System`.

use std::fmt::Write as _;

use crate::error::Error;
use crate::install::{self, Init};
use crate::json;
use crate::render::{self, Detection};
use crate::system::{OsRelease, System};

/// Whether osconf would configure a root, and why (or why not): `yes: …` or `no: …`.
pub struct Configurable {
    pub yes: bool,
    pub why: String,
}

/// What detection found under a root; a probe that found nothing says what it looked at.
pub struct Survey {
    pub os: OsRelease,
    /// The init system that would start osconf at boot, and why it is that one.
    pub init: Result<(&'static Init, String), Error>,
    /// The network stack osconf would configure.
    pub stack: Result<Detection, Error>,
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
    /// boot and a network stack to write; the verdict says which is missing.
    pub fn configurable(&self) -> Configurable {
        let no = |why: &str| Configurable {
            yes: false,
            why: format!("no: {why}"),
        };
        match (&self.init, &self.stack) {
            (Ok((init, _)), Ok(d)) => Configurable {
                yes: true,
                why: format!("yes: started by {}, configures {}", init.name, d.stack.name),
            },
            (Err(_), Err(_)) => no("neither its init system nor its network stack is known"),
            (Err(_), _) => no("its init system is not known (osconf install --init chooses one)"),
            (_, Err(_)) => no("its network stack is not known (osconf --stack chooses one)"),
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
        let _ = writeln!(out, "osconf: {}", self.configurable().why);
        out
    }

    /// The survey as one JSON object: `{"distribution":{"id","id_like","version_id","pretty_name"},
    /// "init":{"name","evidence"}|null,"stack":{"name","evidence"}|null,"configurable":bool,"why"}`.
    pub fn json(&self) -> String {
        let os = &self.os;
        let ids = json::array(os.id_like.iter().map(|l| json::string(l)));
        let named = |found: Option<(&str, &str)>| match found {
            Some((name, why)) => format!(
                "{{\"name\":{},\"evidence\":{}}}",
                json::string(name),
                json::string(why)
            ),
            None => "null".to_owned(),
        };
        let verdict = self.configurable();
        format!(
            "{{\"distribution\":{{\"id\":{},\"id_like\":{},\"version_id\":{},\"pretty_name\":{}}},\
             \"init\":{},\"stack\":{},\"configurable\":{},\"why\":{}}}",
            json::string(&os.id),
            ids,
            json::string(&os.version_id),
            json::string(&os.pretty_name),
            named(self.init.as_ref().ok().map(|(i, why)| (i.name, why.as_str()))),
            named(
                self.stack
                    .as_ref()
                    .ok()
                    .map(|d| (d.stack.name, d.evidence.as_str()))
            ),
            verdict.yes,
            json::string(&verdict.why),
        )
    }
}
