//! A minimal rtnetlink client over a NETLINK_ROUTE socket: requests answered by an acknowledgement,
//! dumps, and the kernel's errno turned into an `io::Error` that says what was attempted. It speaks
//! only to the kernel (messages from any other sender are dropped) and never waits unbounded.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType, sockopt};

use super::netlink::{self, Message, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, Request};

/// The kernel answers at once; the bound only keeps a boot from hanging on a kernel that does not.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Larger than any one datagram the kernel sends (it fills at most about 32 KiB per dump part).
const RECV_BUF: usize = 64 * 1024;
/// A dump interrupted by a concurrent change is asked again this many times.
const DUMP_TRIES: usize = 3;

pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub fn open() -> io::Result<Rtnl> {
        // NETLINK_ROUTE is protocol 0, which rustix spells `None`.
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| context("opening a NETLINK_ROUTE socket", e.into()))?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0))?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(TIMEOUT))?;
        Ok(Rtnl {
            fd,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends a request that the kernel acknowledges; `what` names it in the error.
    pub fn request(&mut self, req: Request, what: &str) -> io::Result<()> {
        self.exchange(req, |_| Ok(())).map_err(|e| context(what, e))
    }

    /// The answer to a request for one object (RTM_GETLINK by name).
    pub fn get(&mut self, req: Request, what: &str) -> io::Result<Vec<u8>> {
        let mut answer = None;
        self.exchange(req, |m| {
            answer.get_or_insert_with(|| m.payload.to_vec());
            Ok(())
        })
        .map_err(|e| context(what, e))?;
        answer.ok_or_else(|| io::Error::other(format!("{what}: the kernel sent no answer")))
    }

    /// Every message of a dump, each parsed by `parse` (`None`s dropped).
    pub fn dump<T>(
        &mut self,
        req: &Request,
        what: &str,
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> io::Result<Vec<T>> {
        for _ in 0..DUMP_TRIES {
            let mut out = Vec::new();
            let mut interrupted = false;
            self.exchange(req.clone(), |m| {
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                out.extend(parse(m.payload));
                Ok(())
            })
            .map_err(|e| context(what, e))?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(io::Error::other(format!(
            "{what}: the dump was interrupted by concurrent changes {DUMP_TRIES} times"
        )))
    }

    /// Sends `req` and hands each answer to `each` until the kernel's acknowledgement, error or end
    /// of dump for this sequence number: every request but a dump asks for an acknowledgement, which
    /// follows its answer if it has one.
    fn exchange(
        &mut self,
        req: Request,
        mut each: impl FnMut(&Message<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = req.finish(seq);
        let kernel = SocketAddrNetlink::new(0, 0);
        rustix::net::sendto(&self.fd, &bytes, rustix::net::SendFlags::empty(), &kernel)?;
        loop {
            let (len, full, from) = rustix::net::recvfrom(&self.fd, &mut self.buf[..], RecvFlags::TRUNC)?;
            let from_kernel = from
                .and_then(|a| SocketAddrNetlink::try_from(a).ok())
                .is_some_and(|a| a.pid() == 0);
            if !from_kernel {
                continue;
            }
            if full > len {
                return Err(io::Error::other(format!(
                    "a netlink answer of {full} bytes did not fit in {len}"
                )));
            }
            let datagram = &self.buf[..len];
            for m in netlink::messages(datagram).map_err(io::Error::other)? {
                match m.kind {
                    NLMSG_ERROR if netlink::error_seq(m.payload) == Some(seq) => {
                        return match netlink::status(m.payload) {
                            Some(0) => Ok(()),
                            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
                            None => Err(io::Error::other("a truncated netlink error")),
                        };
                    }
                    _ if m.seq != seq => {} // an answer to an earlier request that gave up
                    NLMSG_DONE => {
                        return match netlink::status(m.payload) {
                            Some(errno) if errno > 0 => Err(io::Error::from_raw_os_error(errno)),
                            _ => Ok(()),
                        };
                    }
                    NLMSG_ERROR => {}
                    _ => each(&m)?,
                }
            }
        }
    }
}

/// `what: <the kernel's message> (os error N)`, keeping the error's kind.
fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

// Read-only questions to the test process's own kernel: they need no privileges and change nothing.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_the_kernel_and_decodes_its_errno() {
        let mut nl = Rtnl::open().unwrap();
        let lo = nl.get(netlink::get_link("lo"), "looking up lo").unwrap();
        assert_eq!(netlink::parse_link(&lo).unwrap().name.as_deref(), Some("lo"));
        let err = nl
            .get(netlink::get_link("osconf-absent0"), "looking up osconf-absent0")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("looking up osconf-absent0: "), "{text}");
        assert!(text.ends_with("(os error 19)"), "ENODEV: {text}");
        // A dump after an error on the same socket still finds its own answers.
        let links = nl
            .dump(&netlink::dump_addrs(), "listing", netlink::parse_addr)
            .unwrap();
        assert!(links.iter().any(|a| a.local.is_loopback()), "{links:?}");
    }
}
