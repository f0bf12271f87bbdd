//! `image test`'s os.conf into its qcow2 overlay (`image::inject::into_overlay`): only the ranges of
//! partition 1 that change are written, by qemu-io, into the overlay — no raw copy of the disk —
//! and qemu then reads os.conf there with mtools, the overlay clean for `qemu-img check`, its
//! backing image untouched.

use std::fs;
use std::process::Command;

use crate::common::real::{have_tools, run};
use crate::image_formats::{convert, leftovers, qemu_check, qemu_raw, setup};

#[test]
fn os_conf_goes_into_the_overlay_as_the_changed_ranges_only() {
    let test = "os_conf_goes_into_the_overlay_as_the_changed_ranges_only";
    let Some((dir, raw, conf)) = setup(test) else {
        return;
    };
    if !have_tools(test, &["qemu-io", "mtype"]) {
        return;
    }
    let d = dir.path();
    let backing = d.join("disk.qcow2");
    convert(&raw, &["-O", "qcow2"], &backing);
    let backing_bytes = fs::read(&backing).unwrap();
    // As image test makes it: the backing file by its absolute path, in a work directory whose
    // name has a space (qemu-io splits its commands at spaces).
    let work = d.join("work dir");
    fs::create_dir(&work).unwrap();
    let overlay = work.join("disk.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&backing)
        .arg(&overlay));
    let empty = fs::metadata(&overlay).unwrap().len();
    for round in 0..2 {
        if round == 1 {
            fs::write(&conf, "hostname=formats-again\n").unwrap();
        }
        let said = osconf::image::inject::into_overlay(&overlay, &conf).unwrap();
        assert!(said.contains("into partition 1"), "{said}");
        qemu_check(&overlay);
        // qemu reads the overlay; mtools reads os.conf in partition 1 (at 1 MiB) of what it read.
        let virt = d.join("virt.raw");
        let disk = qemu_raw(&overlay, "qcow2", &virt);
        let out = run(Command::new("mtype")
            .arg("-i")
            .arg(format!("{}@@1M", virt.display()))
            .arg("::aliyun_custom_image/os.conf"));
        assert_eq!(out.stdout, fs::read(&conf).unwrap(), "round {round}");
        // Past partition 1 the disk is the backing image's.
        let base = fs::read(&raw).unwrap();
        assert!(disk[41 << 20..] == base[41 << 20..], "round {round}");
        assert_eq!(leftovers(&work), Vec::<String>::new());
    }
    // A few clusters of FAT and directory went in, not the disk.
    let grown = fs::metadata(&overlay).unwrap().len() - empty;
    assert!(grown < 2 << 20, "the overlay grew by {grown} bytes");
    assert!(
        fs::read(&backing).unwrap() == backing_bytes,
        "the backing image changed"
    );
}
