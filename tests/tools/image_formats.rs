//! Every format ECS imports, on images qemu-img made from a raw image the real tools built (sfdisk,
//! mkfs.vfat, mkfs.ext4 -d): qcow2 v3, v2 (`compat=0.10`), compressed, with a backing file; VHD fixed
//! and dynamic; VMDK monolithicSparse and streamOptimized. osconf's readers give the bytes
//! `qemu-img convert -O raw` gives; `check` says what it says of the raw image; `inject` and
//! `prepare` keep the format and its options, leave `qemu-img check` clean, and leave the virtual
//! disk exactly as the same command leaves the raw image. Hostile images (tables past the end,
//! backing files that are FIFOs, links, loops) are "image damaged" with the file untouched; a run
//! killed just before the new image replaces the old one leaves the old one byte for byte.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::images::{Part, build};
use crate::common::real::{have_tools, run};
use osconf::disk::ReadAt as _;
use osconf::disk::format;

const TOOLS: [&str; 8] = [
    "sfdisk",
    "mkfs.vfat",
    "mkfs.ext4",
    "mcopy",
    "debugfs",
    "truncate",
    "qemu-img",
    "cmp",
];

/// (name, `qemu-img convert` arguments) of each format made from the raw image.
const FORMATS: [(&str, &[&str]); 7] = [
    ("qcow2", &["-O", "qcow2"]),
    ("qcow2-v2", &["-O", "qcow2", "-o", "compat=0.10"]),
    ("qcow2-compressed", &["-O", "qcow2", "-c"]),
    ("vhd-fixed", &["-O", "vpc", "-o", "subformat=fixed"]),
    ("vhd-dynamic", &["-O", "vpc", "-o", "subformat=dynamic"]),
    ("vmdk-sparse", &["-O", "vmdk", "-o", "subformat=monolithicSparse"]),
    ("vmdk-stream", &["-O", "vmdk", "-o", "subformat=streamOptimized"]),
];

/// osconf with the tools' clocks fixed, so that two writes of the same thing give the same bytes.
fn osconf(bin: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin)
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .output()
        .unwrap()
}

fn agent() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_osconf"))
}

/// A GPT image: a FAT32 partition 1 and an ext4 systemd root (what prepare installs into).
fn base(dir: &Path) -> PathBuf {
    let tree = crate::image_write::init_tree(dir, "base-tree", "systemd");
    let fat32: &[&str] = &["mkfs.vfat", "-F", "32"];
    let ext4: &[&str] = &["mkfs.ext4", "-q", "-F", "-O", "^64bit"];
    build(
        dir,
        "base",
        "gpt",
        &[Part::new(40, fat32, None), Part::new(64, ext4, Some(&tree))],
    )
    .0
}

pub(crate) fn convert(from: &Path, args: &[&str], to: &Path) {
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw"])
        .args(args)
        .arg(from)
        .arg(to));
}

/// The virtual disk as qemu reads it as format `fmt` (named: qemu probes a fixed VHD as raw).
pub(crate) fn qemu_raw(img: &Path, fmt: &str, to: &Path) -> Vec<u8> {
    run(Command::new("qemu-img")
        .args(["convert", "-f", fmt, "-O", "raw"])
        .arg(img)
        .arg(to));
    fs::read(to).unwrap()
}

/// `qemu-img info --output=json` of `img`.
fn info(img: &Path) -> serde_json::Value {
    let out = run(Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(img));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What of an image's format its writes must keep: format, compat, cluster size, subformat.
fn layout(img: &Path) -> String {
    let i = info(img);
    let data = &i["format-specific"]["data"];
    format!(
        "{} compat={} cluster={} create-type={} backing={}",
        i["format"], data["compat"], i["cluster-size"], data["create-type"], i["backing-filename"]
    )
}

/// `qemu-img check` passes (vpc has no check: exit 63).
pub(crate) fn qemu_check(img: &Path) {
    let out = Command::new("qemu-img").arg("check").arg(img).output().unwrap();
    assert!(
        out.status.success() || out.status.code() == Some(63),
        "qemu-img check {}: {}{}",
        img.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `a` and `b` hold the same disk: equal bytes, and past the shorter one's end only zeros (a VHD
/// rounds its size up to a CHS geometry).
fn same_disk(a: &[u8], b: &[u8], what: &str) {
    let n = a.len().min(b.len());
    assert!(a[..n] == b[..n], "{what}: the virtual disks differ");
    let rest = if a.len() > n { &a[n..] } else { &b[n..] };
    assert!(
        rest.iter().all(|&x| x == 0),
        "{what}: bytes past the shorter disk"
    );
}

/// `osconf image inject IMG CONF`.
fn inject(img: &Path, conf: &Path) -> Output {
    osconf(
        &agent(),
        &[
            "image".as_ref(),
            "inject".as_ref(),
            img.as_os_str(),
            conf.as_os_str(),
        ],
    )
}

/// What most tests start from, when `test` can run here: a scratch directory, the raw image
/// [`base`] made in it and an os.conf setting the host name.
pub(crate) fn setup(test: &str) -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    if !have_tools(test, &TOOLS) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = base(dir.path());
    let conf = dir.path().join("os.conf");
    fs::write(&conf, "hostname=formats\n").unwrap();
    Some((dir, raw, conf))
}

/// The names in `dir` of what osconf's image commands make beside an image while they run.
pub(crate) fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".osconf-"))
        .collect()
}

#[test]
fn every_format_reads_as_qemu_reads_it() {
    let test = "every_format_reads_as_qemu_reads_it";
    if !have_tools(test, &TOOLS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = base(dir.path());
    for (name, args) in FORMATS {
        let img = dir.path().join(name);
        convert(&raw, args, &img);
        let want = qemu_raw(&img, args[1], &dir.path().join("want.raw"));
        let disk = format::open(&img).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(disk.size, want.len() as u64, "{name}: virtual size");
        // Read in odd pieces, so reads cross clusters, grains and blocks.
        let mut got = vec![0u8; want.len()];
        let mut at = 0;
        while at < got.len() {
            let end = (at + 1_000_003).min(got.len());
            assert_eq!(disk.read_at(&mut got[at..end], at as u64).unwrap(), end - at);
            at = end;
        }
        assert!(got == want, "{name}: osconf's reader differs from qemu's");
        let out = osconf(
            &agent(),
            &[
                "image".as_ref(),
                "check".as_ref(),
                "--json".as_ref(),
                img.as_os_str(),
            ],
        );
        let raw_out = osconf(
            &agent(),
            &[
                "image".as_ref(),
                "check".as_ref(),
                "--json".as_ref(),
                raw.as_os_str(),
            ],
        );
        assert_eq!(out.status.code(), raw_out.status.code(), "{name}");
        let checks = |o: &Output| {
            let mut c = crate::common::images::checks_of(&o.stdout);
            c.retain(|(k, _, _)| k != "size" && k != "init" && k != "agent");
            c.into_iter().map(|(k, r, _)| (k, r)).collect::<Vec<_>>()
        };
        assert_eq!(checks(&out), checks(&raw_out), "{name}");
    }
}

#[test]
fn inject_and_prepare_keep_the_format_and_write_what_raw_gets() {
    let Some((dir, raw, conf)) = setup("inject_and_prepare_keep_the_format_and_write_what_raw_gets") else {
        return;
    };
    for (verb, extra) in [("inject", Some(&conf)), ("prepare", None)] {
        let args = |img: &Path| {
            let mut a = vec!["image".into(), verb.into(), img.as_os_str().to_owned()];
            a.extend(extra.map(|c| c.as_os_str().to_owned()));
            a
        };
        let run_on = |img: &Path| {
            let a: Vec<std::ffi::OsString> = args(img);
            let refs: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
            let out = osconf(&agent(), &refs);
            assert!(
                out.status.success(),
                "{verb} {}: {}",
                img.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let expected = dir.path().join(format!("{verb}.raw"));
        run(Command::new("cp").arg("--sparse=always").arg(&raw).arg(&expected));
        run_on(&expected);
        let want = fs::read(&expected).unwrap();
        assert!(
            want != fs::read(&raw).unwrap(),
            "{verb} changed nothing in the raw image"
        );
        for (name, convert_args) in FORMATS {
            let img = dir.path().join(format!("{verb}-{name}"));
            convert(&raw, convert_args, &img);
            let before = layout(&img);
            let compressed = format::open(&img).unwrap().compressed().unwrap();
            let said = run_on(&img);
            assert!(!said.contains(".osconf-work"), "{name}: {said}");
            qemu_check(&img);
            assert_eq!(
                layout(&img),
                before,
                "{verb} {name}: the format's options changed"
            );
            assert_eq!(
                format::open(&img).unwrap().compressed().unwrap(),
                compressed,
                "{verb} {name}: compression"
            );
            let got = qemu_raw(&img, convert_args[1], &dir.path().join("got.raw"));
            same_disk(&got, &want, &format!("{verb} {name}"));
            let left = leftovers(dir.path());
            assert!(left.is_empty(), "{name}: left {left:?}");
        }
    }
}

#[test]
fn a_backing_chain_is_read_through_and_kept() {
    let Some((dir, raw, conf)) = setup("a_backing_chain_is_read_through_and_kept") else {
        return;
    };
    let expected = dir.path().join("expected.raw");
    run(Command::new("cp").arg("--sparse=always").arg(&raw).arg(&expected));
    assert!(inject(&expected, &conf).status.success());

    let base_img = dir.path().join("base.qcow2");
    convert(&raw, &["-O", "qcow2"], &base_img);
    let base_bytes = fs::read(&base_img).unwrap();
    let top = dir.path().join("top.qcow2");
    run(Command::new("qemu-img").current_dir(dir.path()).args([
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        "base.qcow2",
        "-F",
        "qcow2",
        "top.qcow2",
    ]));
    let disk = format::open(&top).unwrap();
    assert_eq!(disk.backing.as_ref().unwrap().name, b"base.qcow2");
    let out = osconf(&agent(), &["image".as_ref(), "check".as_ref(), top.as_os_str()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("pass  root") && said.contains("pass  init: systemd"),
        "{said}"
    );
    let out = inject(&top, &conf);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("over its backing file \"base.qcow2\""));
    qemu_check(&top);
    assert_eq!(info(&top)["backing-filename"], "base.qcow2");
    assert!(
        fs::read(&base_img).unwrap() == base_bytes,
        "the backing file changed"
    );
    let got = qemu_raw(&top, "qcow2", &dir.path().join("got.raw"));
    same_disk(&got, &fs::read(&expected).unwrap(), "top.qcow2");
    // Only what differs from the backing file is in the overlay.
    let len = fs::metadata(&top).unwrap().len();
    assert!(len < 4 << 20, "the overlay holds {len} bytes");
}

/// `qemu-img rebase -u`: the header names `backing` (any name), nothing checked.
fn name_backing(img: &Path, backing: &str, fmt: &str) {
    run(Command::new("qemu-img")
        .current_dir(img.parent().unwrap())
        .args(["rebase", "-u", "-f", "qcow2", "-b", backing, "-F", fmt])
        .arg(img));
}

/// `check` and `inject` of `img` are exit 2 with `why` said, quickly, and the file unchanged.
fn refused(img: &Path, conf: &Path, why: &str) {
    let before = fs::read(img).unwrap();
    for args in [
        vec!["image".as_ref(), "check".as_ref(), img.as_os_str()],
        vec![
            "image".as_ref(),
            "inject".as_ref(),
            img.as_os_str(),
            conf.as_os_str(),
        ],
    ] {
        let started = std::time::Instant::now();
        let out = osconf(&agent(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", img.display());
        assert!(err.contains(why), "{}: {err}", img.display());
        assert!(started.elapsed().as_secs() < 20, "{}", img.display());
    }
    assert!(fs::read(img).unwrap() == before, "{} changed", img.display());
}

#[test]
fn hostile_backing_files_are_refused() {
    let test = "hostile_backing_files_are_refused";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["mkfifo"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = d.join("os.conf");
    fs::write(&conf, "hostname=formats\n").unwrap();
    let base_img = d.join("base.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&base_img)
        .arg("64M"));
    let top = |name: &str, backing: &str, fmt: &str| {
        let p = d.join(name);
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&p)
            .arg("64M"));
        name_backing(&p, backing, fmt);
        p
    };
    run(Command::new("mkfifo").arg(d.join("fifo")));
    std::os::unix::fs::symlink("base.qcow2", d.join("link.qcow2")).unwrap();
    refused(&top("to-fifo.qcow2", "fifo", "raw"), &conf, "not a regular file");
    refused(
        &top("to-link.qcow2", "link.qcow2", "qcow2"),
        &conf,
        "a link (refused)",
    );
    refused(&top("self.qcow2", "self.qcow2", "qcow2"), &conf, "loops back");
    let a = top("a.qcow2", "b.qcow2", "qcow2");
    top("b.qcow2", "a.qcow2", "qcow2");
    refused(&a, &conf, "loops back");
    refused(
        &top("nbd.qcow2", "nbd:localhost:10809", "raw"),
        &conf,
        "a protocol",
    );
    refused(
        &top("wrong.qcow2", "base.qcow2", "raw"),
        &conf,
        "the image says raw",
    );
    // A chain longer than any in use: each names the one before.
    let mut last = "base.qcow2".to_owned();
    for i in 0..9 {
        let name = format!("chain{i}.qcow2");
        top(&name, &last, "qcow2");
        last = name;
    }
    refused(&d.join(last), &conf, "a chain of more than 8");
    // Nothing was made beside the images.
    let made = leftovers(d);
    assert!(made.is_empty(), "{made:?}");
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn hostile_tables_are_damage() {
    let Some((dir, raw, conf)) = setup("hostile_tables_are_damage") else {
        return;
    };
    let d = dir.path();
    let made = |name: &str, args: &[&str]| {
        let p = d.join(name);
        convert(&raw, args, &p);
        (p.clone(), fs::read(&p).unwrap())
    };
    let put = |p: &Path, bytes: &[u8], at: usize, value: &[u8]| {
        let mut b = bytes.to_vec();
        b[at..at + value.len()].copy_from_slice(value);
        fs::write(p, b).unwrap();
    };
    // qcow2: L1[0] names an L2 table past the end; then L2[0] names a cluster past the end.
    let (q, bytes) = made("l1.qcow2", &["-O", "qcow2"]);
    let l1 = be64(&bytes, 40) as usize;
    put(&q, &bytes, l1, &(1u64 << 40).to_be_bytes());
    refused(&q, &conf, "image damaged: an L2 table at byte 1099511627776");
    let (q, bytes) = made("l2.qcow2", &["-O", "qcow2"]);
    let l2 = (be64(&bytes, l1) & 0x00ff_ffff_ffff_fe00) as usize;
    put(&q, &bytes, l2, &((1u64 << 40) | (1 << 63)).to_be_bytes());
    refused(&q, &conf, "image damaged: cluster 0 at byte 1099511627776");
    // An L1 table of 2^32 - 1 entries: larger than any table read.
    let (q, bytes) = made("l1size.qcow2", &["-O", "qcow2"]);
    put(&q, &bytes, 24, &(1u64 << 55).to_be_bytes());
    put(&q, &fs::read(&q).unwrap(), 36, &u32::MAX.to_be_bytes());
    refused(&q, &conf, "image damaged");
    // A compressed cluster whose bytes are not deflate.
    let (q, bytes) = made("deflate.qcow2", &["-O", "qcow2", "-c"]);
    let l2 = (be64(&bytes, be64(&bytes, 40) as usize) & 0x00ff_ffff_ffff_fe00) as usize;
    let host = (be64(&bytes, l2) & ((1 << 54) - 1)) as usize;
    put(&q, &bytes, host, &[0xff; 64]);
    refused(&q, &conf, "does not inflate");
    // Refused features, by name.
    let (q, bytes) = made("zstd.qcow2", &["-O", "qcow2"]);
    let mut b = bytes.clone();
    b[79] |= 8; // incompatible: compression type
    b[100..104].copy_from_slice(&112u32.to_be_bytes());
    b[104] = 1;
    fs::write(&q, &b).unwrap();
    refused(&q, &conf, "zstd compression");
    let (q, bytes) = made("crypt.qcow2", &["-O", "qcow2"]);
    put(&q, &bytes, 32, &1u32.to_be_bytes());
    refused(&q, &conf, "encryption");
    let (q, bytes) = made("data-file.qcow2", &["-O", "qcow2"]);
    put(&q, &bytes, 79, &[bytes[79] | 4]);
    refused(&q, &conf, "an external data file");
    // VHD: a block table entry past the end.
    let (v, bytes) = made("bat.vhd", &["-O", "vpc", "-o", "subformat=dynamic"]);
    let header = be64(&bytes, 16) as usize;
    let bat = be64(&bytes, header + 16) as usize;
    put(&v, &bytes, bat, &0x7fff_ff00u32.to_be_bytes());
    refused(&v, &conf, "image damaged: block 0");
    // VMDK: a grain directory entry past the end, then a grain table entry past it.
    let (k, bytes) = made("gd.vmdk", &["-O", "vmdk"]);
    let gd = u64::from_le_bytes(bytes[56..64].try_into().unwrap()) as usize * 512;
    put(&k, &bytes, gd, &0x7fff_ff00u32.to_le_bytes());
    refused(&k, &conf, "image damaged: a grain table");
    let (k, bytes) = made("gt.vmdk", &["-O", "vmdk"]);
    let gt = u32::from_le_bytes(bytes[gd..gd + 4].try_into().unwrap()) as usize * 512;
    put(&k, &bytes, gt, &0x7fff_ff00u32.to_le_bytes());
    refused(&k, &conf, "image damaged: grain 0");
    // A grain table that is the grain directory itself: its entries name grain tables as grains.
    let (k, bytes) = made("loop.vmdk", &["-O", "vmdk"]);
    put(&k, &bytes, gd, &((gd / 512) as u32).to_le_bytes());
    let out = osconf(&agent(), &["image".as_ref(), "check".as_ref(), k.as_os_str()]);
    assert!(matches!(out.status.code(), Some(1 | 2)), "{out:?}");
}

#[test]
fn a_run_killed_before_the_new_image_replaces_the_old_leaves_it_whole() {
    let Some((dir, raw, conf)) = setup("a_run_killed_before_the_new_image_replaces_the_old_leaves_it_whole")
    else {
        return;
    };
    let img = dir.path().join("disk.qcow2");
    convert(&raw, &["-O", "qcow2"], &img);
    let before = fs::read(&img).unwrap();
    for step in ["image-staged", "image-converted"] {
        let mut child = Command::new(crate::common::hooks::binary())
            .args(["image", "inject"])
            .arg(&img)
            .arg(&conf)
            .env("OSCONF_TEST_STOP_AT", step)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Stopped at the step: kill it there, as a power cut would.
        let pid = child.id();
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !fs::read_to_string(&stat).is_ok_and(|s| s.contains(") T ")) {
            assert!(std::time::Instant::now() < deadline, "{step}: never stopped");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(fs::read(&img).unwrap() == before, "{step}: the image changed");
        assert!(
            !leftovers(dir.path()).is_empty(),
            "{step}: the kill left nothing to sweep"
        );
    }
    // The next run removes what the killed ones left, then writes.
    let out = inject(&img, &conf);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("removed") && said.contains(".new"), "{said}");
    qemu_check(&img);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn without_qemu_img_a_qcow2_write_is_exit_3_naming_the_package() {
    let Some((dir, raw, conf)) = setup("without_qemu_img_a_qcow2_write_is_exit_3_naming_the_package") else {
        return;
    };
    let img = dir.path().join("disk.qcow2");
    convert(&raw, &["-O", "qcow2"], &img);
    let before = fs::read(&img).unwrap();
    // A PATH with the filesystem tools and the toolkit, no qemu-img.
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    for tool in ["mcopy", "mmd", "debugfs"] {
        let found = run(Command::new("sh").args(["-c", &format!("command -v {tool}")])).stdout;
        std::os::unix::fs::symlink(String::from_utf8(found).unwrap().trim(), bin.join(tool)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_osconf-image"))
        .args(["inject"])
        .arg(&img)
        .arg(&conf)
        .env("PATH", &bin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("qemu-utils"), "{err}");
    assert!(fs::read(&img).unwrap() == before);
}

/// What `qemu-img info` says of an image that a write must keep: all of it but the file's own
/// size, the dirty flag and a VMDK's content ID (a new one for new contents).
fn options(img: &Path) -> serde_json::Value {
    let mut i = info(img);
    let o = i.as_object_mut().unwrap();
    o.remove("actual-size");
    o.remove("dirty-flag");
    if let Some(data) = o
        .get_mut("format-specific")
        .and_then(|f| f["data"].as_object_mut())
    {
        data.remove("cid");
    }
    i
}

/// A VMDK's header flags (zeroed grains, compression) and its descriptor's adapter type.
fn vmdk_header(img: &Path) -> (u32, Option<String>) {
    let b = fs::read(img).unwrap();
    let flags = u32::from_le_bytes(b[8..12].try_into().unwrap());
    let text = String::from_utf8_lossy(&b[512..512 + 20 * 512]).into_owned();
    let adapter = text
        .lines()
        .find(|l| l.starts_with("ddb.adapterType"))
        .map(str::to_owned);
    (flags, adapter)
}

/// Gives a VHD (both footers: a dynamic one's copy at the start, its footer at the end) the
/// creator `who`, checksums made right: Hyper-V's `win ` makes readers size it by the footer.
fn vhd_creator(img: &Path, who: &[u8; 4]) {
    let mut b = fs::read(img).unwrap();
    let end = b.len() - 512;
    for at in [0, end] {
        let f = &mut b[at..at + 512];
        f[28..32].copy_from_slice(who);
        f[64..68].fill(0);
        let sum = f.iter().fold(0u32, |s, &x| s.wrapping_add(u32::from(x)));
        f[64..68].copy_from_slice(&(!sum).to_be_bytes());
    }
    fs::write(img, b).unwrap();
}

#[test]
fn a_write_keeps_every_option_of_the_image() {
    let Some((dir, raw, conf)) = setup("a_write_keeps_every_option_of_the_image") else {
        return;
    };
    // Each with options no default gives, so that one not kept shows.
    let made: [(&str, &[&str]); 7] = [
        (
            "qcow2-lazy",
            &[
                "-O",
                "qcow2",
                "-o",
                "compat=1.1,lazy_refcounts=on,cluster_size=4096,refcount_bits=8",
            ],
        ),
        (
            "qcow2-v2",
            &["-O", "qcow2", "-o", "compat=0.10,cluster_size=131072"],
        ),
        (
            "vmdk-zeroed",
            &[
                "-O",
                "vmdk",
                "-o",
                "subformat=monolithicSparse,zeroed_grain=on,adapter_type=lsilogic",
            ],
        ),
        (
            "vmdk-stream",
            &[
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized,adapter_type=buslogic",
            ],
        ),
        (
            "vhd-exact",
            &["-O", "vpc", "-o", "subformat=dynamic,force_size=on"],
        ),
        ("vhd-chs", &["-O", "vpc", "-o", "subformat=dynamic"]),
        (
            "vhd-hyperv",
            &["-O", "vpc", "-o", "subformat=dynamic,force_size=on"],
        ),
    ];
    for (name, args) in made {
        let img = dir.path().join(name);
        convert(&raw, args, &img);
        if name == "vhd-hyperv" {
            vhd_creator(&img, b"win ");
        }
        let before = (options(&img), vmdk_header(&img));
        let size = format::open(&img).unwrap().size;
        let out = inject(&img, &conf);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        qemu_check(&img);
        let after = (options(&img), vmdk_header(&img));
        if name.starts_with("vmdk") {
            assert_eq!(after.1, before.1, "{name}: the VMDK's flags or adapter type");
        }
        assert_eq!(after.0, before.0, "{name}: qemu-img info");
        assert_eq!(format::open(&img).unwrap().size, size, "{name}: virtual size");
    }
}

/// A `qemu-img` before the real one on PATH that damages the VHD it writes, as `DAMAGE` says:
/// `data` a byte of the first block's data, `table` the block table's entry 20 (past the end).
fn damaging_qemu_img(bin: &Path) {
    let real = run(Command::new("sh").args(["-c", "command -v qemu-img"])).stdout;
    let script = format!(
        "#!/bin/sh\n\
         {} \"$@\" || exit\n\
         case \"$*\" in *'-O vpc'*) ;; *) exit 0 ;; esac\n\
         for new; do :; done\n\
         # qemu puts the block table at byte 1536.\n\
         set -- $(od -An -tu1 -j1536 -N4 \"$new\")\n\
         case \"$DAMAGE\" in\n\
         data) at=$(( (($1 << 24) | ($2 << 16) | ($3 << 8) | $4) * 512 + 512 + 100 )); byte='\\377' ;;\n\
         table) at=$((1536 + 4 * 20)); byte='\\177' ;;\n\
         esac\n\
         printf \"$byte\" | dd of=\"$new\" bs=1 seek=$at conv=notrunc status=none\n",
        String::from_utf8(real).unwrap().trim()
    );
    fs::create_dir(bin).unwrap();
    let path = bin.join("qemu-img");
    fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_vhd_written_back_damaged_is_refused_and_the_image_kept() {
    let Some((dir, raw, conf)) = setup("a_vhd_written_back_damaged_is_refused_and_the_image_kept") else {
        return;
    };
    if !have_tools(
        "a_vhd_written_back_damaged_is_refused_and_the_image_kept",
        &["od", "dd"],
    ) {
        return;
    }
    let img = dir.path().join("disk.vhd");
    convert(&raw, &["-O", "vpc", "-o", "subformat=dynamic"], &img);
    let before = fs::read(&img).unwrap();
    let bin = dir.path().join("bin");
    damaging_qemu_img(&bin);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for (damage, says) in [
        ("data", "byte 100 of its virtual disk is not the raw copy's"),
        ("table", "block 20"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_osconf-image"))
            .arg("inject")
            .arg(&img)
            .arg(&conf)
            .env("PATH", &path)
            .env("DAMAGE", damage)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{damage}: {err}");
        assert!(err.contains(says), "{damage}: {err}");
        assert!(fs::read(&img).unwrap() == before, "{damage}: the image changed");
        assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "{damage}");
    }
}
