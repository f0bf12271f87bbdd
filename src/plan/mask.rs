//! Masking for display: `plan` shows files osconf did not write (netplan YAML, NetworkManager
//! profiles, interfaces stanzas it comments out, UCI, rc.inet1.conf), which may hold Wi-Fi, 802.1X,
//! PPPoE or WireGuard secrets. Every line whose key names a secret is shown with its value replaced
//! by [`HIDDEN`], whatever the file; password hashes have their own masking
//! (`render::common::shadow::mask`).
//!
//! It only changes what is shown, never what is written.

use crate::secret::HIDDEN;

/// Words that name a secret in a key (`psk`, `wep-key0`, `PrivateKey`, `WLAN_WPAPSK[0]`,
/// `private-key-password`, `option key`, `wpa-psk`), compared after splitting the key into words.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pass",
    "psk",
    "wpapsk",
    "secret",
    "secrets",
    "key",
    "token",
    "pin",
    "credentials",
];

/// The text with the value of every secret line replaced; other lines as they are.
pub fn secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        match value_start(body) {
            Some(at) => {
                out.push_str(&body[..at]);
                out.push_str(HIDDEN);
            }
            None => out.push_str(body),
        }
        out.push_str(end);
    }
    out
}

/// Where the value of a secret line starts; `None` for any other line (or one with no value).
fn value_start(line: &str) -> Option<usize> {
    // Commented-out lines (`# wpa-psk …`, `# Disabled by osconf: WLAN_WPAPSK[0]=…`) count too.
    let rest = crate::render::common::disabled_rest(line).unwrap_or(line);
    let mut at = line.len() - rest.trim_start_matches(['#', ' ', '\t']).len();
    let rest = &line[at..];
    let token_end = |s: &str| {
        s.find(|c: char| c == '=' || c == ':' || c.is_whitespace())
            .unwrap_or(s.len())
    };
    let mut key_end = at + token_end(rest);
    // UCI: `option NAME value`, `list NAME value`.
    if matches!(&line[at..key_end], "option" | "list") {
        let skip = line[key_end..].len() - line[key_end..].trim_start().len();
        let name_start = key_end + skip;
        key_end = name_start + token_end(&line[name_start..]);
        at = name_start;
    }
    let key = &line[at..key_end];
    // A flow-style YAML map holds its keys inside the line: `access-points: {"x": {password: y}}`.
    let hit = is_secret(key) || (line.contains('{') && is_secret(line));
    if !hit {
        return None;
    }
    let after = &line[key_end..];
    let sep = after.strip_prefix(['=', ':']).unwrap_or(after);
    let start = line.len() - sep.trim_start().len();
    (start < line.len()).then_some(start)
}

/// True when a key (or, for flow YAML, a line) holds a secret word: split at every character that is
/// not a letter or digit and at lower-to-upper case changes, trailing digits dropped.
fn is_secret(text: &str) -> bool {
    let mut word = String::new();
    let mut prev_lower = false;
    let mut hit = false;
    let mut flush = |word: &mut String| {
        let w = word.trim_end_matches(|c: char| c.is_ascii_digit());
        hit |= SECRET_WORDS.contains(&w);
        word.clear();
    };
    for c in text.chars() {
        if !c.is_alphanumeric() || (prev_lower && c.is_uppercase()) {
            flush(&mut word);
        }
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        }
        prev_lower = c.is_lowercase();
    }
    flush(&mut word);
    hit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_hidden_and_nothing_else() {
        let cases = [
            // netplan wifi and 802.1X
            ("        password: \"hunter2\"", "        password: (not shown)"),
            (
                "      auth: {key-management: psk, password: \"x\"}",
                "      auth: (not shown)",
            ),
            (
                "          client-key-password: y",
                "          client-key-password: (not shown)",
            ),
            // NetworkManager keyfiles
            ("psk=hunter2", "psk=(not shown)"),
            ("wep-key0=abc", "wep-key0=(not shown)"),
            ("private-key-password=abc", "private-key-password=(not shown)"),
            ("key-mgmt=wpa-psk", "key-mgmt=(not shown)"),
            // ifupdown, commented out or not
            ("    wpa-psk hunter2", "    wpa-psk (not shown)"),
            ("#    wpa-psk hunter2", "#    wpa-psk (not shown)"),
            // UCI, WireGuard, rc.inet1.conf, ifcfg
            ("\toption password 'x'", "\toption password (not shown)"),
            ("\toption private_key 'x'", "\toption private_key (not shown)"),
            ("\toption key 'x'", "\toption key (not shown)"),
            ("PrivateKey=abc", "PrivateKey=(not shown)"),
            ("WLAN_WPAPSK[0]=\"x\"", "WLAN_WPAPSK[0]=(not shown)"),
            (
                "# Disabled by osconf: WLAN_WPAPSK[0]=\"x\"",
                "# Disabled by osconf: WLAN_WPAPSK[0]=(not shown)",
            ),
            (
                "  # disabled by osconf: WIRELESS_WPA_PSK='x'",
                "  # disabled by osconf: WIRELESS_WPA_PSK=(not shown)",
            ),
            ("WPA_PSK='x'", "WPA_PSK=(not shown)"),
            // not secrets
            ("    address 10.0.0.5", "    address 10.0.0.5"),
            ("\toption ipaddr '10.0.0.5'", "\toption ipaddr '10.0.0.5'"),
            ("monkey", "monkey"),
            ("key", "key"),
            ("password:", "password:"),
            ("10.0.0.5 web.key.example", "10.0.0.5 web.key.example"),
            ("      dhcp4: true", "      dhcp4: true"),
            ("mac-address=00:16:3e:00:00:01", "mac-address=00:16:3e:00:00:01"),
        ];
        for (line, want) in cases {
            assert_eq!(secrets(line), want, "{line}");
            assert_eq!(secrets(&format!("{line}\n")), format!("{want}\n"), "{line}");
        }
    }
}
