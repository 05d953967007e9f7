//! Per-body contracts: which bodies a peer serves, as it said when it connected, and what a
//! call to one it lacks is told.
//!
//! Peers whose registries have the same digest serve the same bodies and say no more. Others
//! send each other a [`Bodies`](crate::protocol::Bodies) list: 12 bytes a body, a fingerprint of
//! its name and one of its site. A connection keeps, of this peer's own bodies, those the other
//! does not serve; a call to one of them fails at once with [`Error::UnknownBody`], which says
//! whether the other build has a different body at the same site, or none of the module's.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Missing};
use crate::hash::{fnv64, FastSet, FNV64_START};
use crate::peer_id::PeerId;
use crate::registry::{Registration, Registry};

/// The bytes of one entry of a [`Bodies`](crate::protocol::Bodies) list.
const ENTRY: usize = 12;

/// FNV-1a 64 of a body's name: the same on every peer and with every build of this crate.
pub(crate) fn name_print(name: &str) -> u64 {
    fnv64(FNV64_START, name.as_bytes())
}

/// FNV-1a 32 of a body's site, `file:line:column`.
pub(crate) fn site_print(r: &Registration) -> u32 {
    r.site().bytes().fold(0x811c_9dc5, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// This registry's entries, for a [`Bodies`](crate::protocol::Bodies) frame.
pub(crate) fn advertise(registry: &Registry) -> Bytes {
    let mut entries = BytesMut::with_capacity(registry.len() * ENTRY);
    for r in registry.registrations() {
        entries.put_u64(name_print(r.name()));
        entries.put_u32(site_print(r));
    }
    entries.freeze()
}

/// What a connected peer serves, from [`Node::peer_bodies`](crate::Node::peer_bodies).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::Node;
///
/// let server = Node::builder().id("server").build()?;
/// let listening = server.listen("127.0.0.1:0").await?;
/// let client = Node::builder().id("client").build()?;
/// let peer = client.connect(&listening.url()).await?;
/// let served = client.peer_bodies(&peer)?;
/// // Built from the same source: the server serves every body of this build.
/// assert_eq!(served.known.len(), client.registry().len());
/// assert_eq!(served.total, served.known.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Served {
    /// This build's bodies that the peer serves, sorted by name.
    pub known: Vec<&'static Registration>,
    /// How many bodies the peer serves in all: more than `known` when it has bodies this build
    /// lacks, which it cannot name.
    pub total: usize,
}

/// What a connected peer serves, as this peer sees it.
#[derive(Debug, Default)]
pub(crate) enum PeerBodies {
    /// The same bodies as this peer (equal digests).
    #[default]
    Same,
    /// Another set.
    Listed(Box<Listed>),
}

#[derive(Debug)]
pub(crate) struct Listed {
    /// How many bodies the peer serves.
    count: usize,
    /// Of this peer's bodies, those the other does not serve.
    unserved: FastSet<&'static str>,
    /// The sites of the peer's bodies, sorted.
    sites: Vec<u32>,
}

impl PeerBodies {
    /// What a peer whose list is `entries` serves, against `registry`; `announced` is the
    /// number of bodies its `Hello` gave. A list of any other length is a protocol error. What
    /// is kept of it takes no more memory than the list itself (sorted vectors, not hash
    /// tables), however large a peer makes it within the frame limit.
    pub(crate) fn listed(
        registry: &Registry,
        entries: &[u8],
        announced: u32,
    ) -> Result<PeerBodies, Error> {
        let count = entries.len() / ENTRY;
        if !entries.len().is_multiple_of(ENTRY) || u64::try_from(count) != Ok(u64::from(announced))
        {
            return Err(Error::protocol(format!(
                "a list of bodies of {} bytes, where the peer's hello announced {announced} \
                 bodies of {ENTRY} bytes each",
                entries.len()
            )));
        }
        let mut names = Vec::with_capacity(count);
        let mut sites = Vec::with_capacity(count);
        for entry in entries.chunks_exact(ENTRY) {
            let (name, site) = entry.split_at(8);
            names.push(u64::from_be_bytes(name.try_into().unwrap_or_default()));
            sites.push(u32::from_be_bytes(site.try_into().unwrap_or_default()));
        }
        crate::sort::sort(&mut names);
        crate::sort::sort(&mut sites);
        sites.dedup();
        let unserved = registry
            .registrations()
            .filter(|r| names.binary_search(&name_print(r.name())).is_err())
            .map(|r| r.name())
            .collect();
        Ok(PeerBodies::Listed(Box::new(Listed {
            count,
            unserved,
            sites,
        })))
    }

    /// Whether the peer serves `body`, one of this peer's bodies.
    #[inline]
    pub(crate) fn serves(&self, body: &str) -> bool {
        match self {
            PeerBodies::Same => true,
            PeerBodies::Listed(listed) => !listed.unserved.contains(body),
        }
    }

    /// This build's bodies that the peer serves, and how many it serves in all.
    pub(crate) fn served(&self, registry: &Registry) -> Served {
        Served {
            known: registry
                .bodies()
                .into_iter()
                .filter(|r| self.serves(r.name()))
                .collect(),
            total: self.count(registry),
        }
    }

    /// How many bodies the peer serves, given this peer's registry.
    pub(crate) fn count(&self, registry: &Registry) -> usize {
        match self {
            PeerBodies::Same => registry.len(),
            PeerBodies::Listed(listed) => listed.count,
        }
    }

    /// This peer's bodies whose module is `module` or inside it that the other does not serve.
    pub(crate) fn lacking(&self, registry: &Registry, module: &str) -> Vec<&'static Registration> {
        let PeerBodies::Listed(listed) = self else {
            return Vec::new();
        };
        registry
            .registrations()
            .filter(|r| within(r.module(), module) && listed.unserved.contains(r.name()))
            .collect()
    }

    /// The error for a call of `body` that the peer does not serve.
    pub(crate) fn unknown_body(&self, registry: &Registry, peer: &PeerId, body: &str) -> Error {
        let PeerBodies::Listed(listed) = self else {
            return unknown_body(registry, peer, body, Missing::Unknown);
        };
        let Some(r) = registry.registration(body) else {
            return unknown_body(registry, peer, body, Missing::Body);
        };
        let missing = if listed.sites.binary_search(&site_print(r)).is_ok() {
            Missing::ChangedThere
        } else if registry
            .registrations()
            .filter(|other| other.module() == r.module())
            .all(|other| listed.unserved.contains(other.name()))
        {
            Missing::Module
        } else {
            Missing::Body
        };
        unknown_body(registry, peer, body, missing)
    }
}

/// [`Error::UnknownBody`] for `body`, with its site when this build has it.
pub(crate) fn unknown_body(
    registry: &Registry,
    peer: &PeerId,
    body: &str,
    missing: Missing,
) -> Error {
    Error::UnknownBody {
        peer: peer.clone(),
        body: body.to_owned(),
        site: registry.registration(body).map(|r| r.site()),
        missing,
    }
}

/// Whether `module` is `outer` or a module inside it.
fn within(module: &str, outer: &str) -> bool {
    module
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Handled, HandlerInput};

    fn never(_: HandlerInput<'_>) -> Handled {
        Handled::OutputType("()")
    }

    static A: Registration = Registration::new("app::jobs::a1", 1, "src/jobs.rs", 3, 4, "", never);
    static B: Registration = Registration::new("app::jobs::b1", 2, "src/jobs.rs", 9, 4, "", never);
    static B_CHANGED: Registration =
        Registration::new("app::jobs::b2", 3, "src/jobs.rs", 9, 4, "", never);
    static C: Registration = Registration::new("app::mail::c1", 4, "src/mail.rs", 5, 8, "", never);
    static D: Registration = Registration::new(
        "app::jobs::nightly::d1",
        5,
        "src/jobs/nightly.rs",
        2,
        4,
        "",
        never,
    );

    fn registry(bodies: &[&'static Registration]) -> Registry {
        Registry::build(bodies.iter().copied()).expect("no conflict")
    }

    #[test]
    fn a_peer_lacks_exactly_the_bodies_its_list_does_not_name() {
        let ours = registry(&[&A, &B, &C]);
        let theirs = registry(&[&A, &B_CHANGED, &D]);
        let peer = listed(&ours, &theirs);
        assert!(peer.serves(A.name()));
        assert!(!peer.serves(B.name()));
        assert!(!peer.serves(C.name()));
        assert_eq!(peer.count(&ours), 3);
        let names = |rs: Vec<&'static Registration>| {
            let mut names: Vec<_> = rs.iter().map(|r| r.name()).collect();
            names.sort_unstable();
            names
        };
        assert_eq!(names(peer.lacking(&ours, "app::jobs")), [B.name()]);
        assert_eq!(names(peer.lacking(&ours, "app")), [B.name(), C.name()]);
        assert!(
            peer.lacking(&ours, "app::job").is_empty(),
            "a prefix is not a module"
        );
    }

    #[test]
    fn an_unknown_body_says_whether_the_other_build_differs_there_or_lacks_the_module() {
        let ours = registry(&[&A, &B, &C]);
        let theirs = registry(&[&A, &B_CHANGED]);
        let peer = listed(&ours, &theirs);
        let id = PeerId::new("server");
        let missing = |body| match peer.unknown_body(&ours, &id, body) {
            Error::UnknownBody { missing, site, .. } => (missing, site),
            other => panic!("{other}"),
        };
        assert_eq!(
            missing(B.name()),
            (Missing::ChangedThere, Some("src/jobs.rs:9:5".to_owned()))
        );
        assert_eq!(
            missing(C.name()),
            (Missing::Module, Some("src/mail.rs:5:9".to_owned()))
        );
        assert_eq!(missing("elsewhere::x"), (Missing::Body, None));
    }

    fn listed(ours: &Registry, theirs: &Registry) -> PeerBodies {
        let count = u32::try_from(theirs.len()).expect("few");
        PeerBodies::listed(ours, &advertise(theirs), count).expect("a list")
    }

    #[test]
    fn a_list_of_another_length_than_announced_is_refused() {
        let ours = registry(&[&A]);
        for (bytes, announced) in [(ENTRY + 1, 1), (ENTRY, 2), (2 * ENTRY, 1), (0, 1)] {
            assert!(
                matches!(
                    PeerBodies::listed(&ours, &vec![0; bytes], announced),
                    Err(Error::Protocol { .. })
                ),
                "{bytes} bytes for {announced}"
            );
        }
        let empty = PeerBodies::listed(&ours, &[], 0).expect("no bodies is a list");
        assert!(!empty.serves(A.name()));
    }

    #[test]
    fn fingerprints_are_fixed() {
        // Peers built apart compare these: they must not depend on the build.
        assert_eq!(name_print(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(name_print("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(A.site(), "src/jobs.rs:3:5");
        assert_eq!(site_print(&A), 0xa2d1_6889);
    }
}
