//! What opening a filesystem whose log needed recovery did about it — ext's journal, XFS's log —
//! for `image check` to say of the partition it was found on.

/// Which log it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    ExtJournal,
    Xfs,
}

impl Log {
    fn name(self) -> &'static str {
        match self {
            Log::ExtJournal => "journal",
            Log::Xfs => "XFS log",
        }
    }
}

/// What was done about a log that needed recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The log was replayed into the view read: `transactions` committed transactions, `copies`
    /// saying what they wrote (`12 blocks`); `notes` what the replay met (a commit or record that
    /// failed its checksum ends the log before it, as the kernel ends it).
    Replayed {
        log: Log,
        transactions: u32,
        copies: String,
        notes: Vec<String>,
    },
    /// The log is on another device: nothing was replayed.
    External(Log),
}

impl Recovery {
    /// One line for a report about the filesystem at `place` (`partition 2`).
    pub fn describe(&self, place: &str) -> String {
        match self {
            Recovery::Replayed {
                log,
                transactions,
                copies,
                notes,
            } => {
                let mut s = format!(
                    "{place}: {} needed recovery: {transactions} transactions replayed in the view read \
                     ({copies}); the image itself is unchanged",
                    log.name()
                );
                for note in notes {
                    s.push_str(&format!("; {note}"));
                }
                s
            }
            Recovery::External(Log::ExtJournal) => format!(
                "{place}: journal needs recovery, but it is on an external device: cannot replay, \
                 external journal; read as it is, which may miss the last writes"
            ),
            Recovery::External(Log::Xfs) => format!(
                "{place}: the XFS log is on an external device: cannot replay, external log; read as \
                 it is, which may miss what the running system wrote last"
            ),
        }
    }
}
