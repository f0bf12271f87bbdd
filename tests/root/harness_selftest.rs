//! The real-test harness itself: a namespace with a veth NIC gets an address and routes through plain
//! `ip`, and the harness reads them back as the renderer tests will.

use crate::common::real::{Netns, cannot_run, check_prerequisites};

#[test]
fn netns_nic_address_and_routes_read_back() {
    if let Err(why) = check_prerequisites(&[]) {
        return cannot_run("netns_nic_address_and_routes_read_back", &why);
    }
    let ns = Netns::new("self");
    ns.add_nic("eth0", "00:8c:fa:5e:14:23");
    let out = ns.sh("ip addr add 10.171.254.123/24 dev eth0; ip link set eth0 up; ip route add default via 10.171.254.1 dev eth0; cat /sys/class/net/eth0/address");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "00:8c:fa:5e:14:23\n");
    assert_eq!(ns.ipv4_addrs("eth0"), ["10.171.254.123/24"]);
    assert_eq!(ns.ipv4_routes(), ["default via 10.171.254.1 dev eth0"]);
}
