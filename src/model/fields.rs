//! Field parsers: one function per kind of os.conf value, each returning a message that quotes the
//! offending text. They judge a single value; rules across keys live in `validate`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use base64ct::{Base64Unpadded, Encoding as _};

use crate::error::Error;
use crate::secret::Secret;

/// A NIC hardware address, shown as lower-case `aa:bb:cc:dd:ee:ff` whatever form os.conf used.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Mac {
    /// Six octets of one or two hex digits, any case, all separated by `:` or all by `-`: os.conf's
    /// form ([`mac`] holds it to two digits and unicast) and what NetworkManager keyfiles and ifcfg
    /// `HWADDR=` hold. The one MAC reader.
    pub fn parse(text: &str) -> Option<Mac> {
        let sep = if text.contains('-') { '-' } else { ':' };
        let mut parts = text.split(sep);
        let mut out = [0u8; 6];
        for slot in &mut out {
            let part = parts.next()?;
            if !(1..=2).contains(&part.len()) || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            *slot = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The decoded root password: never shown (`Debug` is masked, there is no `Display`) and zeroed when
/// dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Secret<String>);

impl Password {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

pub fn hostname(v: &str) -> Result<String, Error> {
    if v.len() > 253 {
        return Err(Error::bad(format!(
            "is {} characters long; at most 253 are allowed",
            v.len()
        )));
    }
    for label in v.split('.') {
        let ok_chars = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(Error::bad(format!(
                "{v:?} is not a valid host name (labels of 1-63 letters, digits or '-', separated by '.')"
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(Error::bad(format!(
                "{v:?} is not a valid host name (a label starts or ends with '-')"
            )));
        }
    }
    Ok(v.to_owned())
}

/// ECS allows 8-30 characters; SHA-512 crypt's cost grows with the square of the length (a 45 KB
/// password takes minutes), so a password much longer than any real one is refused.
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Base64 (standard alphabet, padding optional) → UTF-8, trailing newlines stripped as `$(…)` does.
/// No message quotes any part of the value or of what it decodes to (not even where base64 breaks).
/// The decoded bytes live only in buffers that are zeroed when dropped.
pub fn password(v: &str) -> Result<Password, Error> {
    // Padding optional, as ECS's own decoding allows; when present, it is the canonical amount
    // (the text then a multiple of 4 long). base64ct: the crate sha-crypt already brings.
    let unpadded = v.trim_end_matches('=');
    let padding = v.len() - unpadded.len();
    if padding > 2 || (padding > 0 && !v.len().is_multiple_of(4)) {
        return Err(Error::bad("not valid base64"));
    }
    let mut bytes = Secret::new(vec![0u8; unpadded.len() * 3 / 4]);
    let len = Base64Unpadded::decode(unpadded, bytes.as_mut_slice())
        .map(|decoded| decoded.len())
        .map_err(|_| Error::bad("not valid base64"))?;
    bytes.truncate(len);
    let text =
        std::str::from_utf8(bytes.expose()).map_err(|_| Error::bad("does not decode to UTF-8 text"))?;
    let text = text.trim_end_matches('\n');
    if text.is_empty() {
        return Err(Error::bad("decodes to an empty password"));
    }
    if text.contains(['\0', '\n', '\r']) {
        return Err(Error::bad(
            "decodes to a password holding a NUL, newline or carriage return",
        ));
    }
    if text.len() > MAX_PASSWORD_BYTES {
        return Err(Error::bad(format!(
            "decodes to a password longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(Password(Secret::new(text.to_owned())))
}

/// Strict dotted quad: four decimal octets, no leading zeros (which some tools read as octal).
pub fn ipv4(v: &str) -> Result<Ipv4Addr, Error> {
    v.parse::<Ipv4Addr>()
        .map_err(|_| Error::bad(format!("{v:?} is not an IPv4 address")))
}

/// An address a NIC may hold or route through: not 0.0.0.0, loopback, multicast or broadcast.
pub fn unicast_ipv4(v: &str) -> Result<Ipv4Addr, Error> {
    let ip = ipv4(v)?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
        return Err(Error::bad(format!("{v:?} is not a usable unicast address")));
    }
    Ok(ip)
}

/// A contiguous dotted netmask → its prefix length (1..=32).
pub fn netmask(v: &str) -> Result<u8, Error> {
    let bits = u32::from(ipv4(v).map_err(|_| Error::bad(format!("{v:?} is not a netmask")))?);
    let len = bits.leading_ones();
    if bits.checked_shl(len).unwrap_or(0) != 0 {
        return Err(Error::bad(format!("{v:?} is not a contiguous netmask")));
    }
    if len == 0 {
        return Err(Error::bad(format!("{v:?} leaves no network part")));
    }
    Ok(len as u8)
}

/// Six octets separated by `:` or `-`, any case; must be a unicast, non-zero NIC address.
pub fn mac(v: &str) -> Result<Mac, Error> {
    // Six two-digit octets and five separators.
    let mac = Mac::parse(v).filter(|_| v.len() == 17).ok_or_else(|| {
        Error::bad(format!(
            "{v:?} is not a MAC address (six hex octets separated by ':' or '-')"
        ))
    })?;
    if mac.0 == [0; 6] || mac.0[0] & 1 == 1 {
        return Err(Error::bad(format!("{v:?} is not a unicast NIC address")));
    }
    Ok(mac)
}

/// Space-separated IPv4 or IPv6 addresses.
pub fn nameservers(v: &str) -> Result<Vec<IpAddr>, Error> {
    v.split_ascii_whitespace()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() => Ok(ip),
            _ => Err(Error::bad(format!("{s:?} is not a name server address"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks() {
        assert_eq!(netmask("255.255.255.0"), Ok(24));
        assert_eq!(netmask("255.255.255.255"), Ok(32));
        assert_eq!(netmask("128.0.0.0"), Ok(1));
        assert!(
            netmask("255.0.255.0")
                .unwrap_err()
                .message
                .contains("not a contiguous netmask")
        );
        assert!(
            netmask("0.0.0.0")
                .unwrap_err()
                .message
                .contains("no network part")
        );
        assert!(
            netmask("255.255.255")
                .unwrap_err()
                .message
                .contains("not a netmask")
        );
        assert!(netmask("24").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(mac("00:8C:fa:5e:14:23").unwrap().to_string(), "00:8c:fa:5e:14:23");
        assert_eq!(mac("00-8c-fa-5e-14-23").unwrap().to_string(), "00:8c:fa:5e:14:23");
        for bad in [
            "00:8c:fa:5e:14",
            "00:8c:fa:5e:14:23:11",
            "00:8c:fa:5e:14:2g",
            "008cfa5e1423",
            "0:8c:fa:5e:14:23",
            "+0:8c:fa:5e:14:23",
        ] {
            assert!(
                mac(bad).unwrap_err().message.contains("not a MAC address"),
                "{bad}"
            );
        }
        assert!(mac("00:8c-fa:5e:14:23").is_err());
        assert!(mac("01:00:5e:00:00:01").unwrap_err().message.contains("unicast"));
        assert!(mac("00:00:00:00:00:00").unwrap_err().message.contains("unicast"));
    }

    #[test]
    fn passwords() {
        assert_eq!(password("cXdlcjEyMzQK").unwrap().expose(), "qwer1234");
        assert_eq!(
            password("cXdlcjEyMzQ").unwrap().expose(),
            "qwer1234",
            "padding is optional"
        );
        assert_eq!(password("YQoKCg==").unwrap().expose(), "a");
        assert!(password("!!!").unwrap_err().message.contains("not valid base64"));
        // Where base64 breaks and with which symbol would tell what the password is around there.
        for bad in [
            "cXdlcjEyMzQK!",
            "cXdl cjEy",
            "cXdlcjEyMzQK===",
            "c",
            "YQ===",
            "YWI==",
            "YQ=",
            "YR==",
            "cXdl\ncjEy",
        ] {
            assert_eq!(password(bad).unwrap_err().message, "not valid base64", "{bad}");
        }
        let long = "YWFh".repeat(100);
        assert_eq!(
            password(&long).unwrap_err().message,
            "decodes to a password longer than 256 bytes"
        );
        assert!(password("Cg==").unwrap_err().message.contains("empty"));
        assert!(password("YQpi").unwrap_err().message.contains("newline"));
        assert!(password("YQ1i").unwrap_err().message.contains("carriage return"));
        assert!(password("YQBi").unwrap_err().message.contains("NUL"));
        assert!(password("/w==").unwrap_err().message.contains("UTF-8"));
        assert_eq!(
            format!("{:?}", password("cXdlcjEyMzQK").unwrap()),
            "Password(<redacted>)"
        );
    }

    #[test]
    fn hostnames() {
        for ok in ["iZ23r29djmjZ", "a", "web-1.example.com", &"a".repeat(63)] {
            assert_eq!(hostname(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a.",
            "$(reboot)",
            "a b",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(hostname(bad).is_err(), "{bad:?}");
        }
        let long = vec!["a".repeat(50); 6].join(".");
        assert!(hostname(&long).unwrap_err().message.contains("at most 253"));
    }

    #[test]
    fn addresses() {
        assert!(ipv4("999.1.1.1").is_err());
        assert!(ipv4("010.1.1.1").is_err());
        assert!(unicast_ipv4("127.0.0.1").is_err());
        assert!(unicast_ipv4("224.0.0.1").is_err());
        assert_eq!(nameservers(" 7.7.7.7\t2001:db8::1 ").unwrap().len(), 2);
        assert!(
            nameservers("8.8.8.8 nope")
                .unwrap_err()
                .message
                .contains("\"nope\"")
        );
    }
}
