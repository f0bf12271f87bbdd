//! The scratch disk `image test` boots instead of the user's image: for a raw image a reflink where
//! the filesystem shares blocks (btrfs, XFS: instant, no space), else a sparse copy that writes only
//! the image's data extents (`SEEK_DATA`/`SEEK_HOLE`), so a mostly empty 20 GiB image costs what it
//! holds; for a qcow2, VHD or VMDK a qcow2 overlay whose backing file is the image (nothing copied:
//! the guest's writes and os.conf go into the overlay).

use std::io;
use std::path::Path;

use crate::disk::format::Format;
use crate::error::Error;
pub use crate::image::scratch::scratch_copy;

/// Makes `dst` a new qcow2 overlay on the image `src` of format `format`. The backing file is named
/// by its absolute path with no link in it (osconf's reader opens a backing file only so).
pub fn overlay(src: &Path, format: Format, dst: &Path) -> Result<(), Error> {
    let fail = |e: String| Error::failed(Some(dst), format!("making the overlay: {e}"));
    let backing = std::fs::canonicalize(src).map_err(|e| fail(format!("{}: {e}", src.display())))?;
    match std::fs::remove_file(dst) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(fail(e.to_string())),
        _ => {}
    }
    // qemu-img writes the qcow2 header; the format is named, never probed.
    crate::image::tool(
        "qemu-img",
        &[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-b".as_ref(),
            backing.as_os_str(),
            "-F".as_ref(),
            format.name().as_ref(),
            dst.as_os_str(),
        ],
    )
    .map(drop)
}
