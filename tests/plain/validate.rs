//! Every error path of the reader and the validator, through the library: each error must say where
//! it is (`line N: key: …`) and quote what was wrong. Also the rules that accept: warnings for unknown
//! keys, empty values as absent, classic vs VPC, the choice of the one default route, deduplicated
//! routes and on-link gateways.

use std::net::Ipv4Addr;

use osconf::model::{self, Config, Ipv4Net, Route};
use osconf::reader::{self, ConfError};

/// Reads and validates `text`; the errors of whichever stage failed.
fn check(text: &[u8]) -> Result<model::Validated, Vec<ConfError>> {
    model::validate(&reader::parse(text)?)
}

fn config(text: &str) -> Config {
    match check(text.as_bytes()) {
        Ok(v) => v.config,
        Err(e) => panic!("{text}\nshould be valid, got:\n{}", shown(&e)),
    }
}

fn shown(errors: &[ConfError]) -> String {
    errors.iter().map(|e| format!("{e}\n")).collect()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn route(dest: &str, via: &str) -> Route {
    let (addr, len) = dest.split_once('/').unwrap();
    Route {
        dest: Ipv4Net {
            addr: ip(addr),
            len: len.parse().unwrap(),
        },
        via: ip(via),
    }
}

/// A valid eth0 of a VPC instance, four lines, for cases that need a NIC around the bad line.
const ETH0: &str = "eth0_ip_addr=10.0.0.5\neth0_mac_addr=00:16:3e:00:00:01\neth0_netmask=255.255.255.0\neth0_gateway=10.0.0.1\n";

/// (file, line, key the error is filed under (None: the line has no usable key), text in the message)
type Case = (&'static str, usize, Option<&'static str>, &'static str);

const READER_CASES: &[Case] = &[
    ("hostname\n", 1, None, "expected key=value"),
    (
        "# c\nhost name=x\n",
        2,
        None,
        "\"host name\": not a valid key name",
    ),
    ("2host=x\n", 1, None, "\"2host\": not a valid key name"),
    ("=x\n", 1, None, "\"\": not a valid key name"),
    (
        "export hostname=x\n",
        1,
        None,
        "\"export hostname\": not a valid key name",
    ),
    ("hostname =x\n", 1, None, "\"hostname \": blank before '='"),
    (
        "hostname=a b\n",
        1,
        Some("hostname"),
        "unexpected text after the value: \"b\"",
    ),
    (
        "hostname=a;rm -rf /\n",
        1,
        Some("hostname"),
        "unexpected text after the value: \"-rf /\"",
    ),
    (
        "hostname=\"a\";reboot\n",
        1,
        Some("hostname"),
        "unexpected text after the value: \";reboot\"",
    ),
    ("hostname= # c\n", 1, Some("hostname"), "blank after '='"),
    ("hostname=\"abc\n", 1, Some("hostname"), "unterminated \" quote"),
    ("\nhostname='abc\n", 2, Some("hostname"), "unterminated ' quote"),
    (
        "hostname=a\nhostname=b\n",
        2,
        Some("hostname"),
        "given twice (first on line 1)",
    ),
    ("hostname=a\0b\n", 1, Some("hostname"), "contains a NUL byte"),
    ("hostname=a\rb\n", 1, Some("hostname"), "carriage return"),
    ("hostname=\"a\r\"\r\n", 1, Some("hostname"), "carriage return"),
    ("# comment\rhostname=evil\n", 1, None, "carriage return"),
];

const FIELD_CASES: &[Case] = &[
    // hostname
    (
        "hostname=$(reboot)\n",
        1,
        Some("hostname"),
        "\"$(reboot)\" is not a valid host name",
    ),
    (
        "hostname=`id`\n",
        1,
        Some("hostname"),
        "\"`id`\" is not a valid host name",
    ),
    (
        "hostname=a..b\n",
        1,
        Some("hostname"),
        "\"a..b\" is not a valid host name",
    ),
    ("hostname=a_b\n", 1, Some("hostname"), "is not a valid host name"),
    (
        "hostname=web1.-x\n",
        1,
        Some("hostname"),
        "a label starts or ends with '-'",
    ),
    (
        "hostname=web1-\n",
        1,
        Some("hostname"),
        "a label starts or ends with '-'",
    ),
    (
        "hostname=w\u{435}b1\n",
        1,
        Some("hostname"),
        "is not a valid host name",
    ),
    // password
    (
        "password=cXdlcjEyMzQK!\n",
        1,
        Some("password"),
        "password: not valid base64",
    ),
    (
        "password=/w==\n",
        1,
        Some("password"),
        "does not decode to UTF-8 text",
    ),
    (
        "password=Cg==\n",
        1,
        Some("password"),
        "decodes to an empty password",
    ),
    (
        "password=YQBi\n",
        1,
        Some("password"),
        "holding a NUL, newline or carriage return",
    ),
    (
        "password=YQ1i\n",
        1,
        Some("password"),
        "holding a NUL, newline or carriage return",
    ),
    (
        "password=YQpi\n",
        1,
        Some("password"),
        "holding a NUL, newline or carriage return",
    ),
    // dns_nameserver
    (
        "dns_nameserver=\"8.8.8.8 dns.example\"\n",
        1,
        Some("dns_nameserver"),
        "\"dns.example\" is not a name server address",
    ),
    (
        "dns_nameserver=0.0.0.0\n",
        1,
        Some("dns_nameserver"),
        "\"0.0.0.0\" is not a name server address",
    ),
    (
        "dns_nameserver=224.0.0.1\n",
        1,
        Some("dns_nameserver"),
        "\"224.0.0.1\" is not a name server address",
    ),
    (
        "dns_nameserver=\"8.8.8.8;4.4.4.4\"\n",
        1,
        Some("dns_nameserver"),
        "\"8.8.8.8;4.4.4.4\" is not a name server address",
    ),
    // ethN_ip_addr
    (
        "eth0_ip_addr=999.1.1.1\neth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_ip_addr"),
        "\"999.1.1.1\" is not an IPv4 address",
    ),
    (
        "eth0_ip_addr=010.0.0.5\neth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_ip_addr"),
        "\"010.0.0.5\" is not an IPv4 address",
    ),
    (
        "eth0_ip_addr=127.0.0.1\neth0_netmask=255.0.0.0\n",
        1,
        Some("eth0_ip_addr"),
        "\"127.0.0.1\" is not a usable unicast address",
    ),
    (
        "eth0_ip_addr=0.0.0.0\neth0_netmask=255.0.0.0\n",
        1,
        Some("eth0_ip_addr"),
        "is not a usable unicast address",
    ),
    (
        "eth0_ip_addr=224.0.0.5\neth0_netmask=255.0.0.0\n",
        1,
        Some("eth0_ip_addr"),
        "is not a usable unicast address",
    ),
    (
        "eth0_ip_addr=10.0.0.0\neth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_ip_addr"),
        "10.0.0.0 is the network or broadcast address of 10.0.0.0/24",
    ),
    (
        "eth0_ip_addr=10.0.0.255\neth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_ip_addr"),
        "10.0.0.255 is the network or broadcast address of 10.0.0.0/24",
    ),
    // ethN_netmask
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=255.0.255.0\n",
        2,
        Some("eth0_netmask"),
        "\"255.0.255.0\" is not a contiguous netmask",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=0.0.0.0\n",
        2,
        Some("eth0_netmask"),
        "\"0.0.0.0\" leaves no network part",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=24\n",
        2,
        Some("eth0_netmask"),
        "\"24\" is not a netmask",
    ),
    // ethN_mac_addr
    (
        "eth0_mac_addr=00:16:3e:00:01\neth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_mac_addr"),
        "\"00:16:3e:00:01\" is not a MAC address",
    ),
    (
        "eth0_mac_addr=00:16:3e:00:00:0g\neth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_mac_addr"),
        "is not a MAC address",
    ),
    (
        "eth0_mac_addr=00:16-3e:00:00:01\neth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_mac_addr"),
        "is not a MAC address",
    ),
    (
        "eth0_mac_addr=01:00:5e:00:00:01\neth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_mac_addr"),
        "\"01:00:5e:00:00:01\" is not a unicast NIC address",
    ),
    (
        "eth0_mac_addr=00:00:00:00:00:00\neth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_mac_addr"),
        "is not a unicast NIC address",
    ),
    // ethN_gateway
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_gateway=10.0.0.256\n",
        3,
        Some("eth0_gateway"),
        "\"10.0.0.256\" is not an IPv4 address",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_gateway=255.255.255.255\n",
        3,
        Some("eth0_gateway"),
        "is not a usable unicast address",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_gateway=10.0.0.5\n",
        3,
        Some("eth0_gateway"),
        "10.0.0.5 is the NIC's own address",
    ),
];

/// Route lists, each after the four lines of `ETH0`, so on line 5.
const ROUTE_CASES: &[(&str, &str)] = &[
    (
        "0.0.0.0/0",
        "route \"0.0.0.0/0\" is not \"destination/length gateway\"",
    ),
    (
        "0.0.0.0/0 10.0.0.1 10.0.0.2",
        "is not \"destination/length gateway\"",
    ),
    (
        "10.0.0.0 10.0.0.1",
        "route destination \"10.0.0.0\" has no /length",
    ),
    (
        "10.0.0.0/33 10.0.0.1",
        "route destination \"10.0.0.0/33\" has a bad prefix length",
    ),
    (
        "10.0.0.0/08 10.0.0.1",
        "route destination \"10.0.0.0/08\" has a bad prefix length",
    ),
    ("10.0.0.0/x 10.0.0.1", "has a bad prefix length"),
    (
        "10.1.0.0/8 10.0.0.1",
        "route destination \"10.1.0.0/8\" has host bits set",
    ),
    ("999.0.0.0/8 10.0.0.1", "\"999.0.0.0\" is not an IPv4 address"),
    ("172.16.0.0/12 *", "\"*\" is not an IPv4 address"),
    (
        "172.16.0.0/12 127.0.0.1",
        "\"127.0.0.1\" is not a usable unicast address",
    ),
    (
        "172.16.0.0/12 10.0.0.5",
        "route to 172.16.0.0/12 goes through the NIC's own address 10.0.0.5",
    ),
    (
        "172.16.0.0/12 192.168.9.9",
        "gateway 192.168.9.9 of route 172.16.0.0/12 is outside 10.0.0.0/24 and is not eth0_gateway: no way to reach it",
    ),
    (
        "0.0.0.0/0 192.168.9.9",
        "gateway 192.168.9.9 of route 0.0.0.0/0 is outside 10.0.0.0/24 and is not eth0_gateway",
    ),
];

/// Rules across keys and NICs.
const CROSS_CASES: &[Case] = &[
    (
        "eth0_ip_addr=10.0.0.5\n",
        1,
        Some("eth0_ip_addr"),
        "eth0 is given partially: eth0_netmask is missing",
    ),
    (
        "eth0_netmask=255.255.255.0\n",
        1,
        Some("eth0_netmask"),
        "eth0 is given partially: eth0_ip_addr is missing",
    ),
    (
        "hostname=a\neth1_route=\"0.0.0.0/0 42.0.0.1\"\neth1_netmask=255.255.255.0\n",
        2,
        Some("eth1_route"),
        "eth1 is given partially: eth1_ip_addr is missing",
    ),
    (
        "eth1_mac_addr=00:16:3e:00:00:02\neth1_ip_addr=\"\"\neth1_netmask=255.255.255.0\n",
        1,
        Some("eth1_mac_addr"),
        "eth1_ip_addr is missing",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_route=\"0.0.0.0/0 10.0.0.1\"\neth1_ip_addr=42.0.0.5\neth1_netmask=255.255.255.0\neth1_route=\"0.0.0.0/0 42.0.0.1\"\n",
        6,
        Some("eth1_route"),
        "a second default route via 42.0.0.1 (the first is via eth0 10.0.0.1, line 3)",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_route=\"0.0.0.0/0 10.0.0.1;0.0.0.0/0 10.0.0.2\"\n",
        3,
        Some("eth0_route"),
        "a second default route via 10.0.0.2",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_route=\"10.0.0.0/8 10.0.0.1;10.0.0.0/8 10.0.0.2\"\n",
        3,
        Some("eth0_route"),
        "route to 10.0.0.0/8 is given twice (also via eth0 10.0.0.1, line 3)",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_route=\"10.0.0.0/8 10.0.0.1\"\neth1_ip_addr=42.0.0.5\neth1_netmask=255.255.255.0\neth1_route=\"10.0.0.0/8 42.0.0.1\"\n",
        6,
        Some("eth1_route"),
        "route to 10.0.0.0/8 is given twice (also via eth0 10.0.0.1, line 3)",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_mac_addr=00:16:3e:00:00:01\neth0_netmask=255.255.255.0\neth1_ip_addr=42.0.0.5\neth1_mac_addr=00-16-3E-00-00-01\neth1_netmask=255.255.255.0\n",
        5,
        Some("eth1_mac_addr"),
        "same MAC as eth0",
    ),
    (
        "eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth1_ip_addr=10.0.0.5\neth1_netmask=255.255.0.0\n",
        3,
        Some("eth1_ip_addr"),
        "same address as eth0",
    ),
    ("# only comments\n\n", 0, None, "no settings"),
    ("foo=bar\nhostname=\"\"\n", 0, None, "no settings"),
];

/// The one error of `text` must be filed at `line` under `key`, and say so in its text.
fn assert_error(text: &str, line: usize, key: Option<&str>, fragment: &str) {
    let errors = match check(text.as_bytes()) {
        Ok(_) => panic!("{text:?} was accepted; expected {fragment:?}"),
        Err(e) => e,
    };
    assert_eq!(
        errors.len(),
        1,
        "{text:?}: expected one error, got:\n{}",
        shown(&errors)
    );
    let e = &errors[0];
    assert_eq!((e.line, e.key.as_deref()), (line, key), "{text:?}: {e}");
    let prefix = match (line, key) {
        (0, None) => String::new(),
        (0, Some(k)) => format!("{k}: "),
        (n, None) => format!("line {n}: "),
        (n, Some(k)) => format!("line {n}: {k}: "),
    };
    let text_shown = e.to_string();
    assert!(
        text_shown.starts_with(&prefix),
        "{text:?}: {text_shown:?} does not start with {prefix:?}"
    );
    assert!(
        text_shown.contains(fragment),
        "{text:?}: {text_shown:?} does not say {fragment:?}"
    );
}

#[test]
fn reader_errors_name_line_and_key() {
    for &(text, line, key, fragment) in READER_CASES {
        assert_error(text, line, key, fragment);
    }
}

#[test]
fn field_errors_name_line_and_key() {
    for &(text, line, key, fragment) in FIELD_CASES {
        assert_error(text, line, key, fragment);
    }
}

#[test]
fn route_errors_name_line_and_key() {
    for &(routes, fragment) in ROUTE_CASES {
        let text = format!("{ETH0}eth0_route=\"{routes}\"\n");
        assert_error(&text, 5, Some("eth0_route"), fragment);
    }
}

#[test]
fn cross_key_errors_name_line_and_key() {
    for &(text, line, key, fragment) in CROSS_CASES {
        assert_error(text, line, key, fragment);
    }
}

#[test]
fn oversized_file_is_refused_without_reading_it_all() {
    let mut big = b"hostname=web1\n".to_vec();
    big.resize(reader::MAX_SIZE + 1, b'#');
    let errors = reader::read(&big[..]).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "file is larger than 65536 bytes; refusing to read it"
    );
    // An endless source (a link to /dev/zero) is cut at the limit too.
    let errors = reader::read(std::io::repeat(b'x')).unwrap_err();
    assert!(errors[0].to_string().contains("larger than"));
}

#[test]
fn every_reader_error_is_reported_not_just_the_first() {
    let text = b"a=1\nb=\"x\nc d=2\na=3\nd=\xff\ne=\0\nf=g h\n";
    let got: Vec<String> = check(text).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "line 2: b: unterminated \" quote",
            "line 3: \"c d\": not a valid key name",
            "line 4: a: given twice (first on line 1)",
            "line 5: d: is not valid UTF-8",
            "line 6: e: contains a NUL byte",
            "line 7: f: unexpected text after the value: \"h\" (quote values that hold blanks)",
        ]
    );
}

#[test]
fn every_validator_error_is_reported_sorted_by_line() {
    let text = "hostname=-bad\npassword=!!!\neth0_ip_addr=10.0.0.5\neth0_netmask=255.0.255.0\n\
                eth1_ip_addr=999.0.0.1\neth1_netmask=255.255.255.0\ndns_nameserver=x\n";
    let got: Vec<(usize, Option<String>)> = check(text.as_bytes())
        .unwrap_err()
        .into_iter()
        .map(|e| (e.line, e.key))
        .collect();
    let want: Vec<(usize, Option<String>)> = [
        (1, "hostname"),
        (2, "password"),
        (4, "eth0_netmask"),
        (5, "eth1_ip_addr"),
        (7, "dns_nameserver"),
    ]
    .into_iter()
    .map(|(l, k)| (l, Some(k.to_owned())))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn unknown_keys_are_warnings_with_line_and_key() {
    let text = "hostname=web1\nfoo=$(reboot)\neth0_mtu=9000\neth00_ip_addr=10.0.0.9\nHOSTNAME=x\n";
    let v = check(text.as_bytes()).unwrap();
    let warnings: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "line 2: foo: unknown key, ignored",
            "line 3: eth0_mtu: unknown key, ignored",
            "line 4: eth00_ip_addr: unknown key, ignored",
            "line 5: HOSTNAME: unknown key, ignored",
        ]
    );
    assert_eq!(v.config.hostname.as_deref(), Some("web1"));
    assert!(v.config.nics.is_empty(), "eth00 is not eth0");
}

#[test]
fn empty_values_count_as_absent() {
    let c = config(&format!(
        "hostname=\"\"\npassword=\ndns_nameserver=''\n{ETH0}eth0_route=\"\"\n\
         eth1_ip_addr=\"\"\neth1_mac_addr=\neth1_netmask=\"\"\neth1_gateway=\neth1_route=\"\"\n"
    ));
    assert_eq!(c.hostname, None);
    assert_eq!(c.password, None);
    assert!(c.nameservers.is_empty());
    assert_eq!(
        c.nics[0].default_gateway,
        Some(ip("10.0.0.1")),
        "empty eth1 keys do not make a classic instance: VPC falls back to eth0_gateway"
    );
    assert_eq!(c.nics.len(), 1);
    assert!(c.nics[0].routes.is_empty());
    // An empty value of a required key is missing, not bad.
    assert_error(
        "eth0_ip_addr=10.0.0.5\neth0_netmask=\"\"\n",
        1,
        Some("eth0_ip_addr"),
        "eth0_netmask is missing",
    );
}

#[test]
fn lenient_forms_ecs_may_write_are_accepted() {
    let c = config(
        "\u{feff}hostname='Web-1.example'\r\npassword=cXdlcjEyMzQ\r\n  eth0_ip_addr=10.0.0.5 # primary\n\
         eth0_mac_addr=00-16-3E-0A-0B-0C\neth0_netmask=\"255.255.255.0\"\n\
         eth0_route=\" 10.0.0.0/8 10.0.0.1 ; 172.16.0.0/12 10.0.0.1 ;\"\ndns_nameserver=\"7.7.7.7\t2001:db8::1\"\n",
    );
    assert_eq!(c.hostname.as_deref(), Some("Web-1.example"));
    assert_eq!(c.password.as_ref().map(|p| p.expose()), Some("qwer1234"));
    assert_eq!(c.nics[0].mac.unwrap().to_string(), "00:16:3e:0a:0b:0c");
    assert_eq!(
        c.nics[0].routes,
        [
            route("10.0.0.0/8", "10.0.0.1"),
            route("172.16.0.0/12", "10.0.0.1")
        ]
    );
    assert_eq!(c.nameservers.len(), 2);
}

#[test]
fn vpc_and_classic_examples() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let vpc = config(&std::fs::read_to_string(format!("{repo}/examples/vpc/os.conf")).unwrap());
    assert_eq!(vpc.nics.len(), 1);
    let eth0 = &vpc.nics[0];
    assert_eq!((eth0.address, eth0.prefix_len), (ip("10.171.254.123"), 24));
    assert_eq!(eth0.default_gateway, Some(ip("10.171.254.1")));
    assert!(
        eth0.routes.is_empty(),
        "the default route is not among the routes"
    );

    let classic = config(&std::fs::read_to_string(format!("{repo}/examples/classic/os.conf")).unwrap());
    let [eth0, eth1] = &classic.nics[..] else {
        panic!("two NICs")
    };
    assert_eq!(
        eth0.default_gateway, None,
        "classic: eth0_gateway is not the default route"
    );
    assert_eq!(
        eth0.routes,
        [
            route("10.0.0.0/8", "10.171.254.1"),
            route("172.16.0.0/12", "10.171.254.1")
        ]
    );
    assert_eq!(eth1.default_gateway, Some(ip("42.120.74.1")));
    assert!(eth1.routes.is_empty());
    assert_eq!(classic.default_nic().map(|n| n.index), Some(1));
    assert_eq!(classic.primary_nic().map(|n| n.index), Some(1));
}

#[test]
fn default_route_choice() {
    // VPC without a 0.0.0.0/0 route: eth0_gateway is the default route.
    let c = config(&format!("{ETH0}eth0_route=\"172.16.0.0/12 10.0.0.1\"\n"));
    assert_eq!(c.nics[0].default_gateway, Some(ip("10.0.0.1")));
    // VPC with an explicit default route through another gateway: the route wins.
    let c = config(&format!("{ETH0}eth0_route=\"0.0.0.0/0 10.0.0.254\"\n"));
    assert_eq!(c.nics[0].default_gateway, Some(ip("10.0.0.254")));
    // VPC without any gateway: no default route at all.
    let c = config("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\n");
    assert_eq!(c.default_nic(), None);
    // Classic: eth1's 0.0.0.0/0, not eth0_gateway.
    let classic = format!(
        "{ETH0}eth0_route=\"10.0.0.0/8 10.0.0.1\"\neth1_ip_addr=42.0.0.5\neth1_netmask=255.255.255.0\neth1_gateway=42.0.0.1\n"
    );
    let c = config(&format!("{classic}eth1_route=\"0.0.0.0/0 42.0.0.1\"\n"));
    assert_eq!(c.nics[0].default_gateway, None);
    assert_eq!(c.nics[1].default_gateway, Some(ip("42.0.0.1")));
    // Classic without a 0.0.0.0/0 anywhere: eth0_gateway does not become a default route.
    let c = config(&classic);
    assert_eq!(c.default_nic(), None);
    // The same default route twice (same NIC, same gateway) is one route, not an error.
    let c = config(&format!(
        "{ETH0}eth0_route=\"0.0.0.0/0 10.0.0.1;10.0.0.0/8 10.0.0.1;0.0.0.0/0 10.0.0.1\"\n"
    ));
    assert_eq!(c.nics[0].default_gateway, Some(ip("10.0.0.1")));
    assert_eq!(c.nics[0].routes, [route("10.0.0.0/8", "10.0.0.1")]);
    // Exactly one NIC carries it.
    assert_eq!(c.nics.iter().filter(|n| n.default_gateway.is_some()).count(), 1);
}

#[test]
fn routes_are_deduplicated_in_order() {
    let c = config(&format!(
        "{ETH0}eth0_route=\"172.16.0.0/12 10.0.0.1;10.0.0.0/8 10.0.0.1;172.16.0.0/12 10.0.0.1\"\n"
    ));
    assert_eq!(
        c.nics[0].routes,
        [
            route("172.16.0.0/12", "10.0.0.1"),
            route("10.0.0.0/8", "10.0.0.1")
        ]
    );
}

#[test]
fn on_link_gateways_are_kept() {
    // ECS VPC style: a /32 address whose gateway is outside the subnet; routes may use that gateway.
    let c = config(
        "eth0_ip_addr=192.168.0.10\neth0_netmask=255.255.255.255\neth0_gateway=192.168.0.253\n\
         eth0_route=\"0.0.0.0/0 192.168.0.253;100.64.0.0/10 192.168.0.253\"\n",
    );
    let eth0 = &c.nics[0];
    assert_eq!(eth0.default_gateway, Some(ip("192.168.0.253")));
    assert!(eth0.is_on_link(ip("192.168.0.253")));
    assert_eq!(eth0.routes, [route("100.64.0.0/10", "192.168.0.253")]);
    // The VPC fallback keeps an off-subnet eth0_gateway too.
    let c = config("eth0_ip_addr=10.0.0.5\neth0_netmask=255.255.255.0\neth0_gateway=10.9.9.1\n");
    assert_eq!(c.nics[0].default_gateway, Some(ip("10.9.9.1")));
    assert!(c.nics[0].is_on_link(ip("10.9.9.1")));
}

#[test]
fn last_applied_record_never_holds_the_password() {
    let c = config(&format!("password=cXdlcjEyMzQK\nhostname=web1\n{ETH0}"));
    let record = c.to_conf_without_password();
    assert!(!record.contains("password") && !record.contains("cXdlcjEyMzQK") && !record.contains("qwer1234"));
    // The record is itself a valid os.conf meaning the same thing, password aside.
    let again = config(&record);
    assert_eq!(again.nics, c.nics);
    assert_eq!(again.hostname, c.hostname);
}

#[test]
fn password_text_is_never_quoted_in_errors() {
    for text in [
        "password= cXdlcjEyMzQK\n",
        "password=cXdlcjEyMzQK extra\n",
        "password=\"cXdlcjEyMzQK\" extra\n",
        "password cXdlcjEyMzQK\n",
        "password=\"cXdl\ncjEyMzQK\"\n",
        "password=cXdlcjEyMzQK\rhostname=x\n",
        "password=cXdlcjEyMzQK\npassword=cXdlcjEyMzQK\n",
        "password=cXdlcjEyMzQK!\n",
        "password=\"qwer1234\"\n",
    ] {
        let errors = shown(&check(text.as_bytes()).unwrap_err());
        for secret in ["cXdlcjEyMzQK", "cjEyMzQK", "qwer1234", "extra"] {
            assert!(
                !errors.contains(secret),
                "{text:?}: the error shows {secret:?}:\n{errors}"
            );
        }
    }
}

#[test]
fn overlong_password_is_refused_before_hashing() {
    // SHA-512 crypt costs the square of the length: a 45 KB password took minutes to hash.
    use base64ct::{Base64, Encoding as _};
    let at_most = "a".repeat(osconf::model::MAX_PASSWORD_BYTES);
    let encode = |p: &str| Base64::encode_string(p.as_bytes());
    let ok = config(&format!("password={}\n", encode(&at_most)));
    assert_eq!(ok.password.unwrap().expose(), at_most);
    assert_error(
        &format!("hostname=a\npassword={}\n", encode(&format!("{at_most}a"))),
        2,
        Some("password"),
        "decodes to a password longer than 256 bytes",
    );
}
