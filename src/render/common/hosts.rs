//! /etc/hosts: one line mapping the host name to the primary NIC's address, marked so the next run
//! replaces it; every other line is kept byte for byte.

use crate::model::Config;
use crate::plan::FileOp;
use crate::system::{self, System};

/// Ends the one line osconf owns in /etc/hosts.
const MARK: &str = "# osconf";

/// Used when the file is missing, so localhost still resolves.
const MINIMAL: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost\n";

pub fn render(config: &Config, sys: &System) -> system::Result<Option<FileOp>> {
    let Some(name) = config.hostname.as_ref() else {
        return Ok(None);
    };
    // Without an address, Debian's convention keeps the name resolvable locally.
    let address = config
        .primary_nic()
        .map_or("127.0.1.1".to_owned(), |n| n.address.to_string());
    let short = name.split('.').next().filter(|s| s != name);
    let names = short.map_or(name.clone(), |s| format!("{name} {s}"));
    let old = sys
        .read("/etc/hosts")?
        .unwrap_or_else(|| MINIMAL.as_bytes().to_vec());
    Ok(Some(FileOp::write(
        "/etc/hosts",
        edit(&old, &format!("{address}\t{names} {MARK}")),
    )))
}

/// Drops the line osconf wrote before and appends the new one.
fn edit(old: &[u8], line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(old.len() + line.len() + 1);
    for l in old.split_inclusive(|&b| b == b'\n') {
        let body = l.strip_suffix(b"\n").unwrap_or(l);
        if !body.trim_ascii_end().ends_with(MARK.as_bytes()) {
            out.extend_from_slice(l);
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_its_own_line() {
        let old = b"127.0.0.1 localhost\r\n10.0.0.9\told # osconf\n# keep me\n1.2.3.4 other";
        let got = edit(old, "10.0.0.2\tnew # osconf");
        assert_eq!(
            got,
            b"127.0.0.1 localhost\r\n# keep me\n1.2.3.4 other\n10.0.0.2\tnew # osconf\n"
        );
        assert_eq!(
            edit(&got, "10.0.0.2\tnew # osconf"),
            got,
            "re-applying changes nothing"
        );
    }
}
