//! Mutation testing of the reader and validator without a fuzzing toolchain: thousands of
//! deterministic random edits of the vendor's samples. Whatever the bytes, osconf must not panic, every
//! error must carry its line, and every accepted file must survive a round trip through the canonical
//! form osconf records in last-applied.conf.

use osconf::model::validate;
use osconf::reader::parse;

/// xorshift64*: deterministic, so a failure names a reproducible iteration.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that matter to a shell-like parser, plus a few that matter to the fields.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"'",
    b"=",
    b"#",
    b";",
    b" ",
    b"\t",
    b"\n",
    b"\r\n",
    b"\r",
    b"\0",
    b"$(",
    b"`",
    b"\\",
    b"/",
    b".",
    b":",
    b"-",
    b"0",
    b"255",
    b"0.0.0.0/0 ",
    b"\xff",
    b"\xc3\xa9",
    b"eth1_",
    b"\xef\xbb\xbf",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if !out.is_empty() => {
                let end = (at + rng.below(8)).min(out.len());
                out.drain(at.min(end)..end);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if at < out.len() => out[at] = rng.next() as u8,
            _ => {
                // Duplicate a random line somewhere else.
                let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
                let line = lines[rng.below(lines.len())].to_vec();
                out.splice(at..at, line.into_iter().chain([b'\n']));
            }
        }
    }
    out
}

#[test]
fn mutated_samples_never_panic_and_accepted_ones_round_trip() {
    let samples = [
        include_bytes!("../../examples/classic/os.conf").as_slice(),
        include_bytes!("../../examples/vpc/os.conf").as_slice(),
    ];
    let mut rng = Rng(0x05c0_f1a9_2026_1123);
    let (mut accepted, mut refused) = (0, 0);
    for iteration in 0..20_000 {
        let input = mutate(&mut rng, samples[iteration % 2]);
        let result = parse(&input).and_then(|raw| validate(&raw));
        match result {
            Err(errors) => {
                refused += 1;
                assert!(
                    !errors.is_empty(),
                    "iteration {iteration}: an error list that is empty"
                );
                for e in &errors {
                    let shown = e.to_string();
                    let located = e.line > 0 && shown.starts_with(&format!("line {}: ", e.line));
                    assert!(located || e.line == 0, "iteration {iteration}: {shown:?}");
                    assert!(
                        !shown.contains("qwer1234"),
                        "iteration {iteration}: password in {shown:?}"
                    );
                }
            }
            Ok(valid) => {
                accepted += 1;
                let canonical = valid.config.to_conf_without_password();
                if canonical.is_empty() {
                    continue; // only a password: nothing to record, nothing to compare
                }
                let again = parse(canonical.as_bytes())
                    .and_then(|raw| validate(&raw))
                    .unwrap_or_else(|e| {
                        panic!("iteration {iteration}: canonical form refused: {e:?}\n{canonical}")
                    });
                let mut want = valid.config.clone();
                want.password = None;
                assert_eq!(
                    again.config, want,
                    "iteration {iteration}: round trip changed the config"
                );
            }
        }
    }
    // Both outcomes must be exercised, or the test proves little.
    eprintln!("mutations: {accepted} accepted, {refused} refused");
    assert!(
        accepted > 1000 && refused > 1000,
        "accepted {accepted}, refused {refused}"
    );
}
