//! Marked blocks: the lines osconf owns inside a file it shares with people or other tools, between
//! a BEGIN and an END line and replaced whole at each apply. Everything outside the block is kept
//! byte for byte (what osconf comments out there carries [`super::DISABLED_LOWER`]).

/// First and last line of osconf's block in a file it shares with others.
pub const BEGIN: &str = "# BEGIN osconf: from aliyun_custom_image/os.conf; replaced at the next change\n";
pub const END: &str = "# END osconf\n";

/// The first and last line (each with its newline) of a marked block.
#[derive(Debug, Clone, Copy)]
pub struct Markers {
    pub begin: &'static str,
    pub end: &'static str,
}

/// osconf's usual markers, [`BEGIN`] and [`END`].
pub const MARKERS: Markers = Markers {
    begin: BEGIN,
    end: END,
};

/// Replaces osconf's marked block in `text` with `block` (where the old one stood, else at the end);
/// an empty `block` just removes it. Everything outside the block is kept byte for byte.
pub fn replace_block(text: &str, block: &str) -> String {
    replace_block_with(text, MARKERS, block)
}

/// [`replace_block`] for a block between other markers.
pub fn replace_block_with(text: &str, markers: Markers, block: &str) -> String {
    match split_block(text, markers) {
        Some((before, after)) => join_block(before, markers, block, after, false),
        None => join_block(text, markers, block, "", true),
    }
}

/// The text before and after the marked block: from a begin line to the next end line (a begin line
/// without one after it is no block, and an earlier begin line is kept as text). `None` when there
/// is no block.
pub fn split_block(text: &str, markers: Markers) -> Option<(&str, &str)> {
    let (begin, end) = (markers.begin.trim_end(), markers.end.trim_end());
    let mut offset = 0;
    let mut start = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if bare == begin {
            start = Some(offset);
        } else if bare == end
            && let Some(s) = start
        {
            return Some((&text[..s], &text[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

/// `before`, then `block` between the markers (nothing when it is empty), then `after`. A block
/// `appended` where there was none is set off from `before` by a blank line.
pub fn join_block(before: &str, markers: Markers, block: &str, after: &str, appended: bool) -> String {
    let mut out = before.to_owned();
    if !block.is_empty() {
        if appended && !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        if appended && !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(markers.begin);
        out.push_str(block);
        out.push_str(markers.end);
    }
    out.push_str(after);
    out
}

/// The lines inside osconf's block (empty when there is none).
pub fn block_lines(text: &str) -> Vec<&str> {
    text.lines()
        .skip_while(|l| *l != BEGIN.trim_end())
        .skip(1)
        .take_while(|l| *l != END.trim_end())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_replaced_in_place_and_appended() {
        let old = format!("# mine\nmtu_eth0=\"1400\"\n{BEGIN}config_eth0=\"1.2.3.4/24\"\n{END}# after\n");
        assert_eq!(
            replace_block(&old, "config_eth0=\"5.6.7.8/24\"\n"),
            format!("# mine\nmtu_eth0=\"1400\"\n{BEGIN}config_eth0=\"5.6.7.8/24\"\n{END}# after\n")
        );
        assert_eq!(replace_block(&old, ""), "# mine\nmtu_eth0=\"1400\"\n# after\n");
        assert_eq!(replace_block("a=1", "b=2\n"), format!("a=1\n\n{BEGIN}b=2\n{END}"));
        assert_eq!(replace_block("", "b=2\n"), format!("{BEGIN}b=2\n{END}"));
        // CRLF lines and a missing final newline outside the block are kept.
        let crlf = format!("a=1\r\n{BEGIN}x\n{END}b=2");
        assert_eq!(replace_block(&crlf, "y\n"), format!("a=1\r\n{BEGIN}y\n{END}b=2"));
        // A begin line without an end line is no block: it and what follows stay.
        let open = format!("a=1\n{BEGIN}b=2\n");
        assert_eq!(replace_block(&open, "y\n"), format!("{open}\n{BEGIN}y\n{END}"));
    }
}
