//! The CRCs disk formats carry, one table-driven implementation for all: CRC-32 (IEEE 802.3,
//! reflected) as GPT uses it, with LVM2's own seed and no final inversion for its labels and
//! metadata, and CRC-32C (Castagnoli) as XFS v5 and Btrfs use it for their metadata blocks.

const IEEE: [u32; 256] = super::crc_table(0xEDB8_8320);
const CASTAGNOLI: [u32; 256] = super::crc_table(0x82F6_3B78);

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
        // The hole counts as zeros whatever it holds.
        let mut b = *b"1234\xff\xff\xff\xff56789";
        let with_hole = crc32c_without(&b, 4);
        b[4..8].fill(0);
        assert_eq!(with_hole, !update(&CASTAGNOLI, !0, &b));
    }
}
