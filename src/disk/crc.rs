//! The CRCs disk formats carry, table-driven (one update for every reflected one): CRC-32 (IEEE 802.3,
//! reflected) as GPT uses it, with LVM2's own seed and no final inversion for its labels and
//! metadata, and CRC-32C (Castagnoli) as XFS v5 and Btrfs use it for their metadata blocks; and two
//! that only ext's older checksums use: the kernel's `crc16` (CRC-16/ARC's polynomial, reflected:
//! `gdt_csum`'s group descriptors) and `crc32_be` (the IEEE polynomial, not reflected: a jbd2 v1
//! journal's transactions).

const IEEE: [u32; 256] = super::crc_table(0xEDB8_8320);
const CASTAGNOLI: [u32; 256] = super::crc_table(0x82F6_3B78);
/// 0x8005 reflected: every entry fits in 16 bits, so the reflected update serves CRC-16 too.
const ARC16: [u32; 256] = super::crc_table(0xA001);
const IEEE_BE: [u32; 256] = be_table(0x04C1_1DB7);

/// The table of a CRC-32 computed most significant bit first.
const fn be_table(poly: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = (c << 1) ^ (poly & (c >> 31).wrapping_neg());
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// `crc` carried over `data`, no inversion either side.
fn update(t: &[u32; 256], crc: u32, data: &[u8]) -> u32 {
    data.iter()
        .fold(crc, |c, &b| t[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8))
}

/// CRC-32 (IEEE 802.3, reflected), as GPT uses.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    !update(&IEEE, !0, data)
}

/// LVM2's `calc_crc`: the IEEE table from its own seed, without the final inversion.
pub(crate) fn lvm(data: &[u8]) -> u32 {
    update(&IEEE, 0xF597_A6CF, data)
}

/// CRC-32C carried from `crc` over `data`, no inversion either side (Btrfs hashes names so).
pub(crate) fn crc32c_raw(crc: u32, data: &[u8]) -> u32 {
    update(&CASTAGNOLI, crc, data)
}

/// The CRC-32C of `data`, as Btrfs stores it.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    !crc32c_raw(!0, data)
}

/// The kernel's `crc16(crc, data)`: carried from `crc`, no inversion either side.
pub(crate) fn crc16(crc: u16, data: &[u8]) -> u16 {
    update(&ARC16, u32::from(crc), data) as u16
}

/// The kernel's `crc32_be(crc, data)`: most significant bit first, no inversion either side.
pub(crate) fn crc32_be(crc: u32, data: &[u8]) -> u32 {
    data.iter().fold(crc, |c, &b| {
        IEEE_BE[((c >> 24) ^ u32::from(b)) as usize] ^ (c << 8)
    })
}

/// CRC-32C of `data` with the four bytes at `hole` counted as zeros (where XFS keeps the CRC).
pub(crate) fn crc32c_without(data: &[u8], hole: usize) -> u32 {
    let c = update(&CASTAGNOLI, !0, &data[..hole]);
    let c = update(&CASTAGNOLI, c, &[0; 4]);
    !update(&CASTAGNOLI, c, &data[hole + 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(!update(&CASTAGNOLI, !0, b"123456789"), 0xE306_9283);
        // CRC-16/MODBUS (the ARC polynomial from !0) and CRC-32/BZIP2 (MSB first, inverted).
        assert_eq!(crc16(!0, b"123456789"), 0x4B37);
        assert_eq!(!crc32_be(!0, b"123456789"), 0xFC89_1918);
        // The hole counts as zeros whatever it holds.
        let mut b = *b"1234\xff\xff\xff\xff56789";
        let with_hole = crc32c_without(&b, 4);
        b[4..8].fill(0);
        assert_eq!(with_hole, !update(&CASTAGNOLI, !0, &b));
    }
}
