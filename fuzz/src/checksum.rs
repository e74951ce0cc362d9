//! Checksum fix-ups. Both on-disk formats guard each record with a
//! CRC32C, so a mutated record almost never gets past the check to the
//! decoder behind it. The targets fix the checksums of some inputs
//! (chosen by a flag in the input) to reach that decoder as well, and
//! leave them alone in the others to test the check itself.

/// Rewrites the CRC of every record of a log segment
/// (`[len u32][crc32c of bytes 8..len u32][kind, flags, reserved][payload]`),
/// following the length chain until it leaves the buffer.
pub fn fix_segment(buf: &mut [u8]) {
    let mut at = 0usize;
    while let Some(len) = read_u32(buf, at) {
        let len = len as usize;
        if len < 20 || len > buf.len() - at {
            return;
        }
        let crc = crc32c::crc32c(&buf[at + 8..at + len]);
        buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += len;
    }
}

/// Rewrites the CRC of every record of a metadata op log
/// (`[len u32][crc32c of the JSON u32][JSON, len bytes]`), following the
/// length chain until it leaves the buffer.
pub fn fix_op_log(buf: &mut [u8]) {
    let mut at = 0usize;
    while let Some(len) = read_u32(buf, at) {
        let len = len as usize;
        if len == 0 || buf.len() - at < 8 || len > buf.len() - at - 8 {
            return;
        }
        let crc = crc32c::crc32c(&buf[at + 8..at + 8 + len]);
        buf[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += 8 + len;
    }
}

/// The little-endian u32 at `at`, if the buffer holds it.
fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Appends an op log record holding `json`.
pub fn push_op_record(out: &mut Vec<u8>, json: &[u8]) {
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(json).to_le_bytes());
    out.extend_from_slice(json);
}
