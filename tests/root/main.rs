//! Integration tests that need root: network namespaces with veth NICs, private mount namespaces,
//! loop devices, PID namespaces, and the real consumers run in them (ifup, dhcpcd, ConnMan, systemd-networkd, netplan,
//! NetworkManager, wicked, OpenRC, busybox and runit init). Without root or a program they print
//! `*** SKIPPED ***` loudly (a failure under `CI=true`). ARCHITECTURE.md's test table says which tests
//! go here.

#[path = "../common/mod.rs"]
mod common;

mod ext_fast_commit;
mod faults;
mod harness_selftest;
mod image_lvm;
mod real_boot;
mod real_connman;
mod real_dhcpcd;
mod real_ifupdown;
mod real_install;
mod real_live;
mod real_misc;
mod real_naming;
mod real_networkd;
mod real_networkmanager;
mod real_openrc;
mod real_openrc_network;
mod real_sysconfig;
mod real_wicked;
mod recovery;
