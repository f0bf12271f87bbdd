//! Marked blocks: the lines osconf owns inside a file it shares with people or other tools, between
//! a BEGIN and an END line and replaced whole at each apply, and the prefix of a line outside the
//! block that osconf commented out. Everything outside the block is kept byte for byte.

/// First and last line of osconf's block in a file it shares with others.
pub const BEGIN: &str = "# BEGIN osconf: from aliyun_custom_image/os.conf; replaced at the next change\n";
pub const END: &str = "# END osconf\n";
/// Prefix of a line osconf turned into a comment so that its own configuration wins.
pub const DISABLED: &str = "# disabled by osconf: ";

/// Replaces osconf's marked block in `text` with `block` (where the old one stood, else at the end);
/// an empty `block` just removes it. Everything outside the block is kept byte for byte.
pub fn replace_block(text: &str, block: &str) -> String {
    let new = if block.is_empty() {
        String::new()
    } else {
        format!("{BEGIN}{block}{END}")
    };
    let mut out = String::new();
    let mut placed = false;
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        if !inside && bare == BEGIN.trim_end() {
            inside = true;
            if !placed {
                out.push_str(&new);
                placed = true;
            }
        } else if inside {
            inside = bare != END.trim_end();
        } else {
            out.push_str(line);
        }
    }
    if !placed && !new.is_empty() {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&new);
    }
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
    }
}
