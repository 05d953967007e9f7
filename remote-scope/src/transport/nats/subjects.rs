//! The subjects nodes use on NATS. Every subject starts with the cluster's prefix (`rs` unless
//! set otherwise, so that several applications can share one NATS cluster):
//!
//! - `<prefix>.node.<to>.<from>.<session>`: frames of one session from node `from` to node
//!   `to`. Node `to` subscribes to `<prefix>.node.<to>.>`.
//! - `<prefix>.back.<from>.<to>.<session>`: the reply subject of every such frame. No one
//!   replies to frames; the subject is there so that NATS tells `from` at once, with a "no
//!   responders" status on it, when `to` is not there (never was, or has gone). Node `from`
//!   subscribes to `<prefix>.back.<from>.>`.
//!
//! Peer ids are free text; in a subject each becomes one token: letters, digits, `_` and `-`
//! as they are, every other byte as `~` and two hex digits.

use crate::peer_id::PeerId;

/// The token of `peer` in subjects.
pub(crate) fn token(peer: &PeerId) -> String {
    let mut out = String::with_capacity(peer.as_str().len());
    for byte in peer.as_str().bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("~{byte:02x}"));
        }
    }
    out
}

/// The peer id a token stands for; `None` for one that no id gives.
pub(crate) fn peer_of(token: &str) -> Option<PeerId> {
    let mut bytes = Vec::with_capacity(token.len());
    let mut rest = token.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'~' {
            let hex = tail.get(..2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else if first.is_ascii_alphanumeric() || first == b'_' || first == b'-' {
            bytes.push(first);
            rest = tail;
        } else {
            return None;
        }
    }
    let peer = PeerId::new(String::from_utf8(bytes).ok()?);
    peer.is_valid().then_some(peer)
}

/// The subjects of frames sent to `to` start with this: `<prefix>.node.<to>.`.
pub(crate) fn inbox_base(prefix: &str, to: &PeerId) -> String {
    format!("{prefix}.node.{}.", token(to))
}

/// Where a node reads the frames sent to it: `<prefix>.node.<to>.>`.
pub(crate) fn inbox(prefix: &str, to: &PeerId) -> String {
    format!("{}>", inbox_base(prefix, to))
}

/// Where `from` sends the frames of `session` to `to`.
pub(crate) fn frames(prefix: &str, to: &PeerId, from: &PeerId, session: u64) -> String {
    format!("{prefix}.node.{}.{}.{session:x}", token(to), token(from))
}

/// The subjects of statuses about `from`'s sessions start with this: `<prefix>.back.<from>.`.
pub(crate) fn back_base(prefix: &str, from: &PeerId) -> String {
    format!("{prefix}.back.{}.", token(from))
}

/// Where a node hears that the peer of one of its sessions is not there.
pub(crate) fn statuses(prefix: &str, from: &PeerId) -> String {
    format!("{}>", back_base(prefix, from))
}

/// The reply subject of the frames `from` sends to `to` in `session`.
pub(crate) fn back(prefix: &str, from: &PeerId, to: &PeerId, session: u64) -> String {
    format!("{}{}.{session:x}", back_base(prefix, from), token(to))
}

/// The sender and session of a frame that arrived on `subject`, under the inbox whose
/// subjects start with `base` ([`inbox_base`]).
pub(crate) fn parse_frames(subject: &str, base: &str) -> Option<(PeerId, u64)> {
    let (from, session) = subject.strip_prefix(base)?.split_once('.')?;
    let session = u64::from_str_radix(session, 16).ok()?;
    Some((peer_of(from)?, session))
}

/// The peer and session a status on `subject` is about, under the subjects that start with
/// `base` ([`back_base`]).
pub(crate) fn parse_back(subject: &str, base: &str) -> Option<(PeerId, u64)> {
    parse_frames(subject, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_stay_one_token() {
        for id in [
            "server",
            "worker-1_eu",
            "worker 1 (eu.west)",
            "ünï~cödé",
            "a.*>",
        ] {
            let peer = PeerId::new(id);
            let t = token(&peer);
            assert!(!t.contains(['.', '*', '>', ' ']), "{t}");
            assert_eq!(peer_of(&t), Some(peer));
        }
        assert_eq!(token(&PeerId::new("a b")), "a~20b");
    }

    #[test]
    fn subjects_parse_back() {
        let (to, from) = (PeerId::new("srv"), PeerId::new("cli.1"));
        let subject = frames("rs", &to, &from, 0xabc);
        assert_eq!(subject, "rs.node.srv.cli~2e1.abc");
        let base = inbox_base("rs", &to);
        assert_eq!(parse_frames(&subject, &base), Some((from.clone(), 0xabc)));
        assert_eq!(inbox("rs", &to), "rs.node.srv.>");
        let back_subject = back("rs", &from, &to, 77);
        assert_eq!(back_subject, "rs.back.cli~2e1.srv.4d");
        assert_eq!(
            parse_back(&back_subject, &back_base("rs", &from)),
            Some((to.clone(), 77))
        );
        assert_eq!(statuses("rs", &from), "rs.back.cli~2e1.>");
    }

    #[test]
    fn hostile_subjects_are_refused() {
        let base = inbox_base("rs", &PeerId::new("srv"));
        for subject in [
            "rs.node.srv",
            "rs.node.srv.x.zz",
            "rs.node.srv.x.1.2",
            "rs.node.srv.~4.1",
            "rs.node.srv.~0a.1",
            "rs.node.srv.a%b.1",
            "rs.node.other.a.1",
            "",
            "rs.node.srv..1",
        ] {
            assert_eq!(parse_frames(subject, &base), None, "{subject}");
        }
        assert_eq!(parse_back("rs.back.x.y.nothex", "rs.back.x."), None);
    }
}
