//! Switching off foreign configuration whole, never editing it: a file moved aside to
//! `NAME.osconf-disabled`, and cloud-init's network configuration turned off the way cloud-init
//! documents.

use super::HEADER;
use crate::plan::{FileOp, Mode};
use crate::render::Rendered;
use crate::system::{self, System};

/// The suffix a disabled foreign file gets: networkd, netplan and ifupdown ignore it, a person
/// recognises it, and removing the suffix restores it.
pub const DISABLED_SUFFIX: &str = ".osconf-disabled";

/// Disables a foreign file, whose content the caller has read as `bytes`, by moving it to
/// `<path>.osconf-disabled` (the executor backs up both). The copy keeps the original's mode and
/// owner: a netplan or NetworkManager file may hold Wi-Fi or 802.1X passwords (which `plan` masks).
pub fn disable(path: &str, bytes: &[u8]) -> Vec<FileOp> {
    vec![
        FileOp::Write {
            path: format!("{path}{DISABLED_SUFFIX}"),
            contents: bytes.to_vec(),
            mode: Mode::SameAs(path.to_owned()),
            secret: false,
        },
        FileOp::Remove {
            path: path.to_owned(),
        },
    ]
}

const CLOUD_CFG_D: &str = "/etc/cloud/cloud.cfg.d";
const CLOUD_NETWORK_OFF: &str = "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg";

/// cloud-init, when installed, writes its own network configuration (`50-cloud-init.yaml`,
/// `10-cloud-init-eth0.network`) for every new instance, which would take the NICs back from
/// osconf's files: its network configuration is turned off the way cloud-init documents, unless a
/// file already does so or cloud-init is disabled altogether.
pub fn cloud_init_network_off(sys: &System) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    if !sys.is_dir(CLOUD_CFG_D)? || sys.exists("/etc/cloud/cloud-init.disabled")? {
        return Ok(out);
    }
    let mut already = false;
    for n in sys.list(CLOUD_CFG_D)?.iter().filter(|n| n.ends_with(".cfg")) {
        already |= disables_network(&sys.read_text(&format!("{CLOUD_CFG_D}/{n}"))?.unwrap_or_default());
    }
    if !already {
        let text = format!("{HEADER}network: {{config: disabled}}\n");
        out.ops.push(FileOp::write(CLOUD_NETWORK_OFF, text));
        out.notes.push(format!(
            "cloud-init is installed: its network configuration is turned off in {CLOUD_NETWORK_OFF} so it does not replace osconf's"
        ));
    }
    Ok(out)
}

/// True when a cloud-init YAML file says `network: {config: disabled}` (flow or block style).
fn disables_network(text: &str) -> bool {
    let squeezed: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    squeezed.contains("network:{config:disabled}") || squeezed.contains("network:config:disabled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_init_disable_forms() {
        assert!(disables_network("network: {config: disabled}\n"));
        assert!(disables_network("network:\n  config: disabled\n"));
        assert!(!disables_network(
            "# network: {config: disabled}\nnetwork: {config: enabled}\n"
        ));
    }
}
