//! The os.conf `image test` injects when none is given: what ECS writes for a new instance — a random
//! root password, a host name, one NIC (a VPC instance: the default route on eth0) or two (the classic
//! shape: eth0 private with routes to the private ranges, eth1 with the default route), fresh locally
//! administered MACs, private addresses, Alibaba's two resolvers. Pure: the randomness comes in as
//! bytes, so tests can check that every outcome is a valid os.conf.

use base64ct::{Base64, Encoding as _};

/// Random bytes one os.conf takes.
pub const RANDOM_BYTES: usize = 32;

const PASSWORD_CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
const PASSWORD_LEN: usize = 16;

/// os.conf text for these random bytes (the password base64-encoded, as ECS writes it).
pub fn generate(r: &[u8; RANDOM_BYTES]) -> String {
    // Locally administered (bit 1 set), unicast (bit 0 clear); eth1 differs in the last bit.
    let mac = |last: u8| {
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{last:02x}",
            (r[19] & 0xfc) | 0x02,
            r[20],
            r[21],
            r[22],
            r[23]
        )
    };
    let macs = [Some(mac(r[28] & 0xfe)), Some(mac(r[28] | 1))];
    let nics = if r[24] & 1 == 0 { 1 } else { 2 };
    body(r, &macs[..nics])
}

/// The os.conf of a later start of the instance that `before` configured, as ECS writes it after
/// the user changed it: a new host name, password and addresses (from these random bytes), the
/// same NICs — their MACs swapped between eth0 and eth1 when there are two, as when elastic NICs
/// are moved — so every address must move to the NIC that now carries its MAC. A NIC without a
/// MAC stays without one; NICs past the second are left out.
pub fn changed(r: &[u8; RANDOM_BYTES], before: &crate::model::Config) -> String {
    let mut macs: Vec<Option<String>> = before
        .nics
        .iter()
        .take(2)
        .map(|n| n.mac.map(|m| m.to_string()))
        .collect();
    if macs.len() == 2 {
        macs.swap(0, 1);
    }
    body(r, &macs)
}

/// The text for one NIC (a VPC instance), two (classic) or none, with these MACs (`None`: no MAC
/// line).
fn body(r: &[u8; RANDOM_BYTES], macs: &[Option<String>]) -> String {
    let password: String = r[..PASSWORD_LEN]
        .iter()
        .map(|&b| char::from(PASSWORD_CHARS[usize::from(b) % PASSWORD_CHARS.len()]))
        .collect();
    let mut out = format!(
        "hostname=osconf-test-{:02x}{:02x}{:02x}\npassword={}\n",
        r[16],
        r[17],
        r[18],
        Base64::encode_string(password.as_bytes())
    );
    // Hosts 2..=251: never the network, the broadcast or a gateway (.1, .253).
    let host = |b: u8| 2 + b % 250;
    let nic = |out: &mut String, n: u32, net: String, host: u8, gateway: u8| {
        out.push_str(&format!(
            "eth{n}_ip_addr={net}.{host}\neth{n}_netmask=255.255.255.0\neth{n}_gateway={net}.{gateway}\n"
        ));
        if let Some(mac) = &macs[n as usize] {
            out.push_str(&format!("eth{n}_mac_addr={mac}\n"));
        }
    };
    if macs.len() == 1 {
        let net = format!("172.{}.{}", 16 + r[25] % 16, r[26]);
        nic(&mut out, 0, net.clone(), host(r[27]), 253);
        out.push_str(&format!("eth0_route=\"0.0.0.0/0 {net}.253\"\n"));
    } else if macs.len() > 1 {
        let net0 = format!("10.{}.{}", r[25], r[26]);
        nic(&mut out, 0, net0.clone(), host(r[27]), 1);
        out.push_str(&format!(
            "eth0_route=\"10.0.0.0/8 {net0}.1;172.16.0.0/12 {net0}.1\"\n"
        ));
        let net1 = format!("192.168.{}", r[29]);
        nic(&mut out, 1, net1.clone(), host(r[30]), 1);
        out.push_str(&format!("eth1_route=\"0.0.0.0/0 {net1}.1\"\n"));
    }
    out.push_str("dns_nameserver=\"100.100.2.136 100.100.2.138\"\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(text: &str) -> crate::model::Config {
        let raw = crate::reader::read(text.as_bytes()).expect("reads");
        let v = crate::model::validate(&raw).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        assert!(v.warnings.is_empty(), "{text}: {:?}", v.warnings);
        v.config
    }

    #[test]
    fn every_generated_os_conf_is_valid_with_fresh_local_macs() {
        let mut shapes = [0; 3];
        for seed in 0..=255u8 {
            let mut r = [0u8; RANDOM_BYTES];
            r.iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = seed.wrapping_mul(37).wrapping_add((i as u8).wrapping_mul(91)));
            let text = generate(&r);
            let c = validated(&text);
            shapes[c.nics.len()] += 1;
            assert!(c.hostname.is_some() && c.password.is_some(), "{text}");
            assert_eq!(c.nameservers.len(), 2);
            let macs: Vec<_> = c.nics.iter().map(|n| n.mac.expect("a MAC").0).collect();
            for m in &macs {
                assert_eq!(m[0] & 3, 2, "locally administered unicast: {text}");
            }
            assert!(macs.len() < 2 || macs[0] != macs[1], "{text}");
            assert!(c.nics.iter().all(|n| n.address.is_private()), "{text}");
            assert_eq!(c.default_nic().map(|n| n.index), Some(c.nics.len() as u32 - 1));
        }
        assert!(shapes[1] > 0 && shapes[2] > 0, "both shapes come out: {shapes:?}");
    }

    #[test]
    fn a_changed_os_conf_keeps_the_nics_and_swaps_two_macs() {
        let (mut a, mut b) = ([0u8; RANDOM_BYTES], [0u8; RANDOM_BYTES]);
        for (i, x) in a.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(7).wrapping_add(1);
        }
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(13).wrapping_add(5);
        }
        for shape in [0u8, 1] {
            a[24] = shape;
            let first = validated(&generate(&a));
            let next = validated(&changed(&b, &first));
            assert_eq!(next.nics.len(), first.nics.len());
            assert_ne!(next.hostname, first.hostname);
            assert_ne!(
                next.password.as_ref().map(|p| p.expose().to_owned()),
                first.password.as_ref().map(|p| p.expose().to_owned())
            );
            let macs = |c: &crate::model::Config| c.nics.iter().map(|n| n.mac).collect::<Vec<_>>();
            let mut swapped = macs(&first);
            swapped.reverse();
            assert_eq!(macs(&next), swapped, "shape {shape}");
            for (n, f) in next.nics.iter().zip(&first.nics) {
                assert_ne!(n.address, f.address);
            }
        }
        // No NIC stays no NIC (the guest has none).
        let none = validated("hostname=a\n");
        assert!(validated(&changed(&b, &none)).nics.is_empty());
        // A NIC without a MAC stays without one.
        let plain = validated("eth0_ip_addr=10.0.0.5\neth0_netmask=255.0.0.0\n");
        let next = validated(&changed(&b, &plain));
        assert_eq!(next.nics.len(), 1);
        assert_eq!(next.nics[0].mac, None);
    }
}
