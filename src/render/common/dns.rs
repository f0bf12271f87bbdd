//! DNS: where name servers go on this system. A plain /etc/resolv.conf is edited in place; a
//! resolv.conf that is a link belongs to a resolver manager, which gets the servers in its own
//! configuration instead, so that it does not overwrite them at its next start.

use std::net::IpAddr;

use super::HEADER;
use crate::plan::FileOp;
use crate::render::Rendered;
use crate::system::{self, System};

/// Who owns /etc/resolv.conf on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvOwner {
    /// A regular file (or none): edit its `nameserver` lines.
    File,
    /// A link into systemd-resolved's runtime directory.
    Resolved,
    /// A link into resolvconf's runtime directory (Debian's resolvconf).
    Resolvconf,
    /// A link into NetworkManager's runtime directory: the stack's NM settings carry DNS.
    NetworkManager,
    /// A link into SUSE netconfig's runtime directory: netconfig writes it from
    /// `NETCONFIG_DNS_STATIC_SERVERS`, which the stack sets.
    Netconfig,
    /// A link to somewhere osconf does not know.
    Unknown(String),
}

pub fn resolv_owner(sys: &System) -> system::Result<ResolvOwner> {
    let Some(target) = sys.link_target("/etc/resolv.conf")? else {
        return Ok(ResolvOwner::File);
    };
    let t = target.to_string_lossy().into_owned();
    Ok(if t.contains("systemd/resolve") {
        ResolvOwner::Resolved
    } else if t.contains("resolvconf") {
        ResolvOwner::Resolvconf
    } else if t.contains("NetworkManager") {
        ResolvOwner::NetworkManager
    } else if t.contains("netconfig") {
        ResolvOwner::Netconfig
    } else {
        ResolvOwner::Unknown(t)
    })
}

/// SUSE's netconfig settings, where `NETCONFIG_DNS_STATIC_SERVERS` lives.
pub const NETCONFIG: &str = "/etc/sysconfig/network/config";

/// The path of osconf's systemd-resolved drop-in.
pub const RESOLVED_DROP_IN: &str = "/etc/systemd/resolved.conf.d/50-osconf.conf";

/// Writes the servers where the owner of resolv.conf reads them. `NetworkManager`, `Netconfig` and
/// `Unknown` write nothing here and say so: the stack's own files must carry DNS for those.
pub fn render(servers: &[IpAddr], sys: &System) -> system::Result<Rendered> {
    let mut out = Rendered::default();
    if servers.is_empty() {
        return Ok(out);
    }
    match resolv_owner(sys)? {
        ResolvOwner::File => {
            let old = sys.read("/etc/resolv.conf")?.unwrap_or_default();
            out.ops.push(FileOp::write("/etc/resolv.conf", set_nameservers(&old, servers)));
            if servers.len() > 3 {
                out.notes.push("resolv.conf: the C library reads only the first 3 name servers".into());
            }
        }
        ResolvOwner::Resolved => {
            out.ops.push(resolved_drop_in(servers));
            out.notes.push(format!(
                "DNS: /etc/resolv.conf links to systemd-resolved; servers go to {RESOLVED_DROP_IN}"
            ));
        }
        ResolvOwner::Resolvconf => {
            let path = "/etc/resolvconf/resolv.conf.d/base";
            let old = sys.read(path)?.unwrap_or_default();
            out.ops.push(FileOp::write(path, set_nameservers(&old, servers)));
            out.notes.push(format!("DNS: /etc/resolv.conf is managed by resolvconf; servers go to {path}"));
        }
        ResolvOwner::NetworkManager => out
            .notes
            .push("DNS: /etc/resolv.conf is NetworkManager's; servers go into the connection settings".into()),
        ResolvOwner::Netconfig => out.notes.push(format!(
            "DNS: /etc/resolv.conf is netconfig's; servers go to NETCONFIG_DNS_STATIC_SERVERS in {NETCONFIG}"
        )),
        ResolvOwner::Unknown(t) => out.notes.push(format!(
            "DNS: /etc/resolv.conf links to {t}, which osconf does not know; left alone, servers only in the network stack's files"
        )),
    }
    Ok(out)
}

/// DNS for a stack that hands the servers to the resolver through a NIC's configuration, when
/// os.conf gives no NIC: that configuration is left alone, so the servers go where the system keeps
/// them system-wide ([`render`]) and a note says so.
pub fn without_nic(servers: &[IpAddr], sys: &System) -> system::Result<Rendered> {
    let mut out = render(servers, sys)?;
    if !servers.is_empty() {
        out.notes.push(
            "DNS: os.conf gives no NIC, so the network configuration is left as it is and the servers go to the system-wide place; servers it names for a NIC still apply when that NIC starts".into()
        );
    }
    Ok(out)
}

pub fn resolved_drop_in(servers: &[IpAddr]) -> FileOp {
    let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
    FileOp::write(
        RESOLVED_DROP_IN,
        format!("{HEADER}[Resolve]\nDNS={}\n", list.join(" ")),
    )
}

/// Replaces every `nameserver` line, putting the new ones where the first old one stood (or at the
/// end); `search`, `options`, comments and unknown lines are kept byte for byte.
pub fn set_nameservers(old: &[u8], servers: &[IpAddr]) -> Vec<u8> {
    let new: String = servers.iter().map(|s| format!("nameserver {s}\n")).collect();
    let mut out = Vec::with_capacity(old.len() + new.len());
    let mut placed = false;
    for line in old.split_inclusive(|&b| b == b'\n') {
        let is_ns = line
            .trim_ascii_start()
            .strip_prefix(b"nameserver")
            .is_some_and(|r| r.first().is_some_and(u8::is_ascii_whitespace));
        if is_ns {
            if !placed {
                out.extend_from_slice(new.as_bytes());
                placed = true;
            }
            continue;
        }
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    if !placed {
        out.extend_from_slice(new.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolv.conf that netconfig links is left to it, with a note naming where servers go.
    #[test]
    fn netconfig_owns_resolv_conf() {
        use crate::render::common::testing::fake_root;
        let root = fake_root(&[], &[("/etc/resolv.conf", "/run/netconfig/resolv.conf")]);
        let sys = System::probe(root.path()).unwrap();
        assert_eq!(resolv_owner(&sys).unwrap(), ResolvOwner::Netconfig);
        let out = render(&["7.7.7.7".parse().unwrap()], &sys).unwrap();
        assert!(out.ops.is_empty(), "{:?}", out.ops);
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains("NETCONFIG_DNS_STATIC_SERVERS")),
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn nameservers_replaced_in_place() {
        let servers: Vec<IpAddr> = vec!["7.7.7.7".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let old =
            b"# generated\nsearch example.com\nnameserver 1.1.1.1\noptions rotate\nnameserver 2.2.2.2\n";
        let got = set_nameservers(old, &servers);
        let want =
            "# generated\nsearch example.com\nnameserver 7.7.7.7\nnameserver 2001:db8::1\noptions rotate\n";
        assert_eq!(String::from_utf8(got).unwrap(), want);
        let got = set_nameservers(b"search a\nnameservers_x y", &servers[..1]);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "search a\nnameservers_x y\nnameserver 7.7.7.7\n"
        );
    }
}
