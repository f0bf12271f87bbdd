//! QCOW2 (versions 2 and 3, as qemu's `docs/interop/qcow2.txt` describes them): the header, the L1
//! table (read whole, bounded), one L2 entry per cluster read, standard, zero and compressed
//! (raw deflate) clusters, unallocated clusters from the backing file. Refused by name: encryption,
//! an external data file, zstd compression, extended L2 entries, unknown incompatible features, an
//! image marked corrupt. Snapshots are not read (the active layer is the disk).

use std::io;
use std::sync::{Arc, Mutex};

use super::{Disk, Format, Opener, Reader, Source, be32, be64, inside, read_backing, read_exact, table};
use crate::disk::{ReadAt, corrupt};

pub const MAGIC: &[u8] = b"QFI\xfb";

/// Bits 9–55 of an L1 or standard L2 entry: a cluster's host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COMPRESSED: u64 = 1 << 62;
/// Compatible feature bit 0 (v3): refcounts may lag behind, repaired when opened dirty.
const LAZY_REFCOUNTS: u64 = 1;
/// The largest backing file name qemu writes or reads.
const MAX_BACKING_NAME: u32 = 1023;
/// Header extensions read at most.
const MAX_EXTENSIONS: usize = 64;
/// The largest virtual size read: 2^56 bytes (64 PiB), far above any import's.
const MAX_SIZE: u64 = 1 << 56;

/// A qcow2 image's active layer.
pub struct Qcow2 {
    file: Source,
    file_len: u64,
    cluster_bits: u32,
    size: u64,
    version: u32,
    l1: Vec<u64>,
    backing: Option<Disk>,
    /// The last compressed cluster inflated (its host entry and bytes): a filesystem reads a
    /// cluster in several pieces.
    last: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
}

fn unsupported(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("a qcow2 image with {what}, which osconf does not read"),
    )
}

/// Opens a qcow2 image from its bytes; `backing` opens the backing file it names.
pub fn open(file: Source, backing: &mut Opener<'_>) -> io::Result<Disk> {
    let file_len = file.size()?;
    let mut h = [0u8; 112];
    let have = file_len.min(h.len() as u64) as usize;
    read_exact(&*file, &"the qcow2 header", 0, &mut h[..have])?;
    if have < 72 {
        return Err(corrupt("the qcow2 header is cut short"));
    }
    let version = be32(&h, 4);
    if !(2..=3).contains(&version) {
        return Err(unsupported(format!("version {version}")));
    }
    let cluster_bits = be32(&h, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(corrupt(format!(
            "qcow2 cluster bits {cluster_bits} (9 to 21 exist)"
        )));
    }
    let cluster = 1u64 << cluster_bits;
    let size = be64(&h, 24);
    if size > MAX_SIZE {
        return Err(corrupt(format!("a qcow2 virtual size of {size} bytes")));
    }
    if be32(&h, 32) != 0 {
        return Err(unsupported("encryption".into()));
    }
    let (incompatible, compatible, refcount_order, header_len, compression) = if version == 3 {
        if have < 104 {
            return Err(corrupt("the qcow2 v3 header is cut short"));
        }
        let header_len = be32(&h, 100);
        let compression = if header_len > 104 && have > 104 { h[104] } else { 0 };
        (be64(&h, 72), be64(&h, 80), be32(&h, 96), header_len, compression)
    } else {
        (0, 0, 4, 72, 0)
    };
    if incompatible & 2 != 0 {
        return Err(corrupt(
            "qemu marked this qcow2 image corrupt (qemu-img check -r all repairs it)",
        ));
    }
    if incompatible & 4 != 0 {
        return Err(unsupported("an external data file".into()));
    }
    if incompatible & 8 != 0 && compression != 0 {
        let name = if compression == 1 {
            "zstd".to_owned()
        } else {
            format!("type {compression}")
        };
        return Err(unsupported(format!("{name} compression")));
    }
    if incompatible & 16 != 0 {
        return Err(unsupported("extended L2 entries (subclusters)".into()));
    }
    if incompatible & !0x1f != 0 {
        return Err(unsupported(format!(
            "incompatible features {:#x}",
            incompatible & !0x1f
        )));
    }
    if refcount_order > 6 {
        return Err(corrupt(format!("qcow2 refcount order {refcount_order}")));
    }
    if u64::from(header_len) > cluster || header_len < 72 {
        return Err(corrupt(format!("a qcow2 header length of {header_len}")));
    }
    // The L1 table: enough entries for the virtual size, at a cluster boundary, inside the file.
    let l2_bits = cluster_bits - 3;
    let per_l1 = 1u64 << (cluster_bits + l2_bits);
    let needed = size.div_ceil(per_l1);
    let l1_size = u64::from(be32(&h, 36));
    let l1_offset = be64(&h, 40);
    if l1_size < needed {
        return Err(corrupt(format!(
            "its L1 table has {l1_size} entries, {needed} are needed for {size} bytes"
        )));
    }
    if !l1_offset.is_multiple_of(cluster) {
        return Err(corrupt(format!(
            "its L1 table at byte {l1_offset} is not at a cluster boundary"
        )));
    }
    // Only the entries the size needs are read: the others address nothing.
    let raw = table(&*file, "L1 table", l1_offset, needed * 8)?;
    let l1: Vec<u64> = raw.chunks_exact(8).map(|c| be64(c, 0)).collect();
    let backing_format = extensions(&*file, u64::from(header_len), cluster)?;
    let backing_offset = be64(&h, 8);
    let backing_len = be32(&h, 16);
    let backing = if backing_offset != 0 && backing_len != 0 {
        if backing_len > MAX_BACKING_NAME || backing_offset > cluster {
            return Err(corrupt(format!(
                "its backing file name ({backing_len} bytes at byte {backing_offset}) is out of bounds"
            )));
        }
        let mut name = vec![0u8; backing_len as usize];
        read_exact(&*file, &"the backing file name", backing_offset, &mut name)?;
        let declared = match backing_format.as_deref() {
            None => None,
            Some(b"raw") => Some(Format::Raw),
            Some(b"qcow2") => Some(Format::Qcow2 { version: 3 }),
            Some(b"vpc") => Some(Format::Vhd { dynamic: true }),
            Some(b"vmdk") => Some(Format::Vmdk { stream: false }),
            Some(other) => {
                return Err(unsupported(format!(
                    "a backing file of format {:?}",
                    String::from_utf8_lossy(other)
                )));
            }
        };
        Some((name.clone(), backing(&name, declared)?))
    } else {
        None
    };
    let compat = if version == 2 { "0.10" } else { "1.1" };
    let mut options = vec![
        format!("compat={compat}"),
        format!("cluster_size={cluster}"),
        format!("refcount_bits={}", 1u32 << refcount_order),
    ];
    if compatible & LAZY_REFCOUNTS != 0 {
        options.push("lazy_refcounts=on".into());
    }
    let info = backing.as_ref().map(|(name, d)| super::Backing {
        name: name.clone(),
        format: d.format,
    });
    let reader = Qcow2 {
        file,
        file_len,
        cluster_bits,
        size,
        version,
        l1,
        backing: backing.map(|(_, d)| d),
        last: Mutex::new(None),
    };
    Ok(Disk {
        reader: Arc::new(reader),
        format: Format::Qcow2 { version },
        size,
        options,
        backing: info,
    })
}

/// The header extensions after the header (`start`, up to the end of the first cluster): the
/// backing file's format when one is given.
fn extensions(file: &dyn ReadAt, start: u64, cluster: u64) -> io::Result<Option<Vec<u8>>> {
    let mut at = start;
    let mut format = None;
    for _ in 0..MAX_EXTENSIONS {
        if at + 8 > cluster {
            break;
        }
        let mut h = [0u8; 8];
        if file.size()? < at + 8 {
            break;
        }
        read_exact(file, &"a qcow2 header extension", at, &mut h)?;
        let (kind, len) = (be32(&h, 0), u64::from(be32(&h, 4)));
        if kind == 0 {
            break;
        }
        let end = (at + 8).checked_add(len.div_ceil(8) * 8);
        if end.is_none_or(|e| e > cluster) {
            return Err(corrupt(format!(
                "a qcow2 header extension of {len} bytes at byte {at}"
            )));
        }
        if kind == 0xe279_2aca && len <= 16 {
            let mut name = vec![0u8; len as usize];
            read_exact(file, &"the backing format", at + 8, &mut name)?;
            format = Some(name);
        }
        at = end.expect("checked");
    }
    Ok(format)
}

impl Qcow2 {
    fn cluster(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// The L2 entry of virtual cluster `vc`, 0 when its L2 table is not allocated.
    fn l2_entry(&self, vc: u64) -> io::Result<u64> {
        let l2_bits = self.cluster_bits - 3;
        let l1e = self.l1[(vc >> l2_bits) as usize];
        let l2 = l1e & OFFSET_MASK;
        if l2 == 0 {
            return Ok(0);
        }
        if !l2.is_multiple_of(self.cluster()) {
            return Err(corrupt(format!(
                "an L2 table at byte {l2} is not at a cluster boundary"
            )));
        }
        inside(&"an L2 table", l2, self.cluster(), self.file_len)?;
        let mut e = [0u8; 8];
        read_exact(
            &*self.file,
            &"an L2 entry",
            l2 + (vc & ((1 << l2_bits) - 1)) * 8,
            &mut e,
        )?;
        Ok(be64(&e, 0))
    }

    /// Virtual cluster `vc` from its compressed entry `l2e`, inflated (the last one kept).
    fn inflated(&self, vc: u64, l2e: u64) -> io::Result<Arc<Vec<u8>>> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((e, bytes)) = &*last
            && *e == l2e
        {
            return Ok(bytes.clone());
        }
        let x = 62 - (self.cluster_bits - 8);
        let offset = l2e & ((1 << x) - 1);
        let sectors = ((l2e >> x) & ((1 << (self.cluster_bits - 8)) - 1)) + 1;
        let len = sectors * 512 - (offset & 511);
        if offset >= self.file_len {
            return Err(corrupt(format!(
                "compressed cluster {vc} at byte {offset} lies past the end of the file"
            )));
        }
        // The last compressed cluster may end before its last sector does.
        let mut input = vec![0u8; len.min(self.file_len - offset) as usize];
        read_exact(&*self.file, &"a compressed cluster", offset, &mut input)?;
        let mut out = vec![0u8; self.cluster() as usize];
        let what = format!("compressed cluster {vc}");
        let n = super::inflate(&input, &mut out, false, &what)?;
        if n != out.len() {
            return Err(corrupt(format!("{what} inflates to {n} bytes, not a cluster")));
        }
        let out = Arc::new(out);
        *last = Some((l2e, out.clone()));
        Ok(out)
    }
}

impl ReadAt for Qcow2 {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        super::by_block(buf, offset, self.size, self.cluster(), |pos, within, out| {
            let vc = pos >> self.cluster_bits;
            let l2e = self.l2_entry(vc)?;
            let host = l2e & OFFSET_MASK;
            if l2e & COMPRESSED != 0 {
                let c = self.inflated(vc, l2e)?;
                out.copy_from_slice(&c[within as usize..within as usize + out.len()]);
            } else if self.version >= 3 && l2e & 1 != 0 {
                out.fill(0);
            } else if host == 0 {
                read_backing(self.backing.as_ref(), out, pos)?;
            } else {
                if !host.is_multiple_of(self.cluster()) {
                    return Err(corrupt(format!(
                        "cluster {vc} at byte {host} is not at a cluster boundary"
                    )));
                }
                read_exact(&*self.file, &format!("cluster {vc}"), host + within, out)?;
            }
            Ok(())
        })
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

impl Reader for Qcow2 {
    /// Scans each distinct L2 table once (so at most the file's own bytes are read).
    fn compressed(&self) -> io::Result<bool> {
        let mut tables: Vec<u64> = self
            .l1
            .iter()
            .map(|e| e & OFFSET_MASK)
            .filter(|&o| o != 0)
            .collect();
        tables.sort_unstable();
        tables.dedup();
        for l2 in tables {
            let t = table(&*self.file, "L2 table", l2, self.cluster())?;
            if t.chunks_exact(8).any(|e| be64(e, 0) & COMPRESSED != 0) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
