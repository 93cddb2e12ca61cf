//! Finding a listener on the local network without typing its address:
//! `listen` announces itself with DNS-SD over multicast DNS
//! (`_vidchat._tcp`, its name and port, on the LAN interfaces' addresses),
//! and `connect` and `peers` look for such announcements for a moment.
//!
//! `mdns-sd` parses the packets; what it reports is still a stranger's word.
//! Names go through [`safe_name`], addresses that cannot be a peer on the LAN
//! are dropped, each listener keeps a few addresses, the list is capped, and
//! a look ends at its deadline whatever arrives. A name proves nothing about
//! who answers: the code both sides see does.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use mdns_sd::{IfKind, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo};

use super::{canonical, is_link_local_v6};
use crate::wire::safe_name;

/// The DNS-SD service type every vidchat listener announces.
pub const SERVICE_TYPE: &str = "_vidchat._tcp.local.";
/// How long `connect` and `peers` listen for announcements.
pub const LOOK_TIME: Duration = Duration::from_secs(2);
/// Listeners kept from one look; announcements of more are counted, not kept.
pub const MAX_LISTENERS: usize = 32;
/// Addresses kept per listener (each may cost a connection attempt).
pub const MAX_ADDRESSES: usize = 4;

/// A vidchat listener that announced itself nearby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its name, made safe to print.
    pub name: String,
    /// Where to call it, IPv4 first, never empty.
    pub addrs: Vec<SocketAddr>,
    /// Its full DNS-SD name, lowercased: one entry per announcer.
    key: String,
}

impl Listener {
    /// A listener from an announcement's full name ("NAME._vidchat._tcp.local.")
    /// and addresses; None when it is not vidchat's or gives no usable address.
    pub fn from_record(
        fullname: &str,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Option<Self> {
        let suffix = format!(".{SERVICE_TYPE}");
        let split = fullname.len().checked_sub(suffix.len())?;
        let (instance, tail) = (fullname.get(..split)?, fullname.get(split..)?);
        if !tail.eq_ignore_ascii_case(&suffix) {
            return None;
        }
        let mut usable: Vec<SocketAddr> = Vec::new();
        for addr in addrs {
            let addr = canonical(addr);
            if is_usable(&addr) && !usable.contains(&addr) {
                usable.push(addr);
            }
            if usable.len() >= MAX_ADDRESSES * 4 {
                break;
            }
        }
        usable.sort_by_key(|a| (a.is_ipv6(), is_link_local(&a.ip()), *a));
        usable.truncate(MAX_ADDRESSES);
        if usable.is_empty() {
            return None;
        }
        Some(Listener {
            name: safe_name(&unescape(instance)),
            addrs: usable,
            key: fullname.to_ascii_lowercase(),
        })
    }

    fn from_resolved(service: &ResolvedService) -> Option<Self> {
        let addrs = service
            .addresses
            .iter()
            .filter_map(|ip| socket_addr(ip, service.port));
        Self::from_record(&service.fullname, addrs)
    }

    /// Drops the addresses that are this machine's (`own`) when it has
    /// others: an announcement that mixes them is not a listener here, and
    /// calling this machine on behalf of someone else's name helps nobody.
    /// One that gives only this machine's addresses is a listener on this
    /// machine, and is kept.
    pub fn drop_own(&mut self, own: &[IpAddr]) {
        if self.addrs.iter().any(|a| !own.contains(&a.ip())) {
            self.addrs.retain(|a| !own.contains(&a.ip()));
        }
    }

    /// The address shown for it: its first.
    pub fn address(&self) -> Option<SocketAddr> {
        self.addrs.first().copied()
    }
}

/// What one look found.
#[derive(Debug, Default)]
pub struct Found {
    pub listeners: Vec<Listener>,
    /// Announcements of listeners beyond [`MAX_LISTENERS`].
    pub ignored: usize,
}

impl Found {
    /// Adds `listener`, or updates it when it announced itself before.
    pub fn add(&mut self, listener: Listener) {
        if let Some(known) = self.listeners.iter_mut().find(|l| l.key == listener.key) {
            *known = listener;
        } else if self.listeners.len() < MAX_LISTENERS {
            self.listeners.push(listener);
        } else {
            self.ignored += 1;
        }
    }

    /// The listeners called `name` (compared without case).
    pub fn named(&self, name: &str) -> Vec<&Listener> {
        self.listeners
            .iter()
            .filter(|l| l.name.eq_ignore_ascii_case(name))
            .collect()
    }
}

/// An address a LAN peer can listen on: not loopback, unspecified,
/// multicast or broadcast, and a port.
fn is_usable(addr: &SocketAddr) -> bool {
    let ip = addr.ip();
    let odd = match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.octets()[0] == 0,
        IpAddr::V6(_) => false,
    };
    addr.port() != 0 && !ip.is_loopback() && !ip.is_unspecified() && !ip.is_multicast() && !odd
}

fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_link_local()) || is_link_local_v6(ip)
}

/// An announced address as a socket address; IPv6 link-local ones carry the
/// interface they were heard on, which is the one to call them through.
fn socket_addr(ip: &ScopedIp, port: u16) -> Option<SocketAddr> {
    match ip {
        ScopedIp::V4(v4) => Some(SocketAddr::new(IpAddr::V4(*v4.addr()), port)),
        ScopedIp::V6(v6) => {
            let scope = if is_link_local(&IpAddr::V6(*v6.addr())) {
                v6.scope_id().index
            } else {
                0
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                *v6.addr(),
                port,
                0,
                scope,
            )))
        }
        _ => None,
    }
}

/// A DNS-SD instance label as its owner wrote it ("my\.laptop" is
/// "my.laptop"); decimal escapes are left for `safe_name` to defuse.
fn unescape(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut chars = label.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next)) if !next.is_ascii_digit() => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// A multicast DNS daemon on the LAN interfaces (loopback would announce
/// 127.0.0.1 to the machine itself and find nothing new).
fn daemon() -> Result<ServiceDaemon> {
    let daemon = ServiceDaemon::new().map_err(|e| anyhow!("cannot start multicast DNS: {e}"))?;
    daemon
        .disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])
        .map_err(|e| anyhow!("cannot start multicast DNS: {e}"))?;
    Ok(daemon)
}

/// How often an announcing listener looks for new addresses of its own.
const ADDRESS_CHECK_SECS: u32 = 1;

/// A listener's announcement; withdrawn (with a goodbye) when dropped.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

/// Announces a listener called `name` on `port`: at `bind`, or on every
/// LAN interface's addresses when it listens on all of them.
pub fn announce(name: &str, port: u16, bind: Option<IpAddr>) -> Result<Announcement> {
    let name = safe_name(name);
    let host = format!("vidchat-{}.local.", name.replace('.', "-"));
    let fail = |e: mdns_sd::Error| anyhow!("cannot announce {name}: {e}");
    let info = match bind.filter(|ip| !ip.is_unspecified()) {
        Some(ip) => ServiceInfo::new(SERVICE_TYPE, &name, &host, ip, port, None).map_err(fail)?,
        None => ServiceInfo::new(SERVICE_TYPE, &name, &host, (), port, None)
            .map_err(fail)?
            .enable_addr_auto(),
    };
    let fullname = info.get_fullname().to_string();
    let daemon = daemon()?;
    // A new address (another network, a renewed lease) is announced within
    // a second: a caller whose call went silent looks for it by name.
    daemon
        .set_ip_check_interval(ADDRESS_CHECK_SECS)
        .map_err(fail)?;
    daemon.register(info).map_err(fail)?;
    Ok(Announcement { daemon, fullname })
}

impl Drop for Announcement {
    fn drop(&mut self) {
        // Both are queued to the daemon thread, in order: the goodbye goes
        // out before it stops, without holding up the caller.
        let _ = self.daemon.unregister(&self.fullname);
        let _ = self.daemon.shutdown();
    }
}

/// Listens for announcements for `time`, or until a listener called `name`
/// is found with an IPv4 address.
pub fn look(time: Duration, name: Option<&str>) -> Result<Found> {
    let daemon = daemon()?;
    let events = daemon
        .browse(SERVICE_TYPE)
        .map_err(|e| anyhow!("cannot look for listeners: {e}"))?;
    let deadline = Instant::now() + time;
    let mut found = Found::default();
    let own: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .iter()
        .map(|i| i.ip().to_canonical())
        .collect();
    while let Ok(event) = events.recv_deadline(deadline) {
        if let ServiceEvent::ServiceResolved(service) = event {
            if let Some(mut listener) = Listener::from_resolved(&service) {
                listener.drop_own(&own);
                found.add(listener);
            }
            // IPv4 and IPv6 addresses come in separate packets, in either
            // order: a look for one name ends once it has an IPv4 address
            // (called first), or at the deadline on an IPv6-only network.
            let wanted = name.map(|n| found.named(n));
            if wanted.is_some_and(|w| w.iter().any(|l| l.addrs.iter().any(SocketAddr::is_ipv4))) {
                break;
            }
        }
    }
    let _ = daemon.shutdown();
    found.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn this_machines_addresses_are_dropped_from_someone_elses_announcement() {
        let own = ["192.168.1.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let record = |addrs: &[&str]| {
            let mut l =
                Listener::from_record("bob._vidchat._tcp.local.", addrs.iter().map(|a| addr(a)))
                    .unwrap();
            l.drop_own(&own);
            l.addrs
        };
        assert_eq!(
            record(&["192.168.1.5:9999", "192.168.1.23:9999", "[fd00::5]:9999"]),
            [addr("192.168.1.23:9999")]
        );
        // Only this machine's: a listener here, kept.
        assert_eq!(
            record(&["192.168.1.5:9999", "[fd00::5]:9999"]),
            [addr("192.168.1.5:9999"), addr("[fd00::5]:9999")]
        );
    }

    #[test]
    fn an_announcement_becomes_a_listener() {
        let l = Listener::from_record(
            "laptop._vidchat._tcp.local.",
            [addr("[fd00::5]:9999"), addr("192.168.1.23:9999")],
        )
        .unwrap();
        assert_eq!(l.name, "laptop");
        assert_eq!(l.addrs, [addr("192.168.1.23:9999"), addr("[fd00::5]:9999")]);
        let upper = Listener::from_record("Laptop._VIDCHAT._tcp.LOCAL.", [addr("10.0.0.2:1")]);
        assert_eq!(upper.unwrap().name, "Laptop");
    }

    #[test]
    fn other_services_and_garbage_names_are_not_listeners() {
        let a = [addr("10.0.0.2:9999")];
        assert!(Listener::from_record("printer._ipp._tcp.local.", a).is_none());
        assert!(Listener::from_record("_vidchat._tcp.local.", a).is_none());
        assert!(Listener::from_record("", a).is_none());
        assert!(Listener::from_record("x", a).is_none());
        // Multi-byte characters where the suffix would start: no panic.
        assert!(Listener::from_record("ééééééééééééééééééééééééééé", a).is_none());
    }

    #[test]
    fn a_hostile_name_is_printed_harmlessly() {
        let a = [addr("10.0.0.2:9999")];
        let l = Listener::from_record("\u{1b}[2J\u{7}code 123 456\\046x._vidchat._tcp.local.", a);
        let name = l.unwrap().name;
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
            "{name}"
        );
        let long = format!("{}._vidchat._tcp.local.", "a".repeat(10_000));
        let l = Listener::from_record(&long, a).unwrap();
        assert_eq!(l.name.len(), crate::wire::MAX_NAME_CHARS);
        let dotted = Listener::from_record("my\\.laptop._vidchat._tcp.local.", a).unwrap();
        assert_eq!(dotted.name, "my.laptop");
    }

    #[test]
    fn addresses_that_cannot_be_a_lan_peer_are_dropped() {
        let bad = [
            "127.0.0.1:22",
            "[::1]:22",
            "0.0.0.0:9999",
            "[::]:9999",
            "224.0.0.251:5353",
            "[ff02::fb]:5353",
            "255.255.255.255:9999",
            "[::ffff:127.0.0.1]:22",
            "192.168.1.5:0",
        ];
        let none = Listener::from_record("x._vidchat._tcp.local.", bad.map(addr));
        assert!(none.is_none());
        let mapped = Listener::from_record(
            "x._vidchat._tcp.local.",
            [addr("[::ffff:192.168.1.5]:9999"), addr("192.168.1.5:9999")],
        );
        assert_eq!(mapped.unwrap().addrs, [addr("192.168.1.5:9999")]);
    }

    #[test]
    fn a_listener_keeps_a_few_addresses() {
        let many = (0..10_000u32)
            .map(|i| SocketAddr::from(([10, 0, (i / 250) as u8, 1 + (i % 250) as u8], 9999)));
        let l = Listener::from_record("x._vidchat._tcp.local.", many).unwrap();
        assert_eq!(l.addrs.len(), MAX_ADDRESSES);
    }

    #[test]
    fn many_announcers_are_capped_and_repeats_update() {
        let mut found = Found::default();
        for i in 0..1000 {
            let name = format!("peer{i}._vidchat._tcp.local.");
            found.add(Listener::from_record(&name, [addr("10.0.0.2:9999")]).unwrap());
        }
        assert_eq!(found.listeners.len(), MAX_LISTENERS);
        assert_eq!(found.ignored, 1000 - MAX_LISTENERS);
        let moved = Listener::from_record("PEER3._vidchat._tcp.local.", [addr("10.0.0.9:1")]);
        found.add(moved.unwrap());
        assert_eq!(found.listeners.len(), MAX_LISTENERS);
        assert_eq!(found.named("peer3")[0].addrs, [addr("10.0.0.9:1")]);
        assert!(found.named("nobody").is_empty());
    }

    #[test]
    fn link_local_ipv6_keeps_its_interface() {
        let scoped = addr("[fe80::1%3]:9999");
        let l = Listener::from_record(
            "x._vidchat._tcp.local.",
            [scoped, addr("[2001:db8::1]:9999")],
        );
        let addrs = l.unwrap().addrs;
        assert_eq!(addrs, [addr("[2001:db8::1]:9999"), scoped]);
        let SocketAddr::V6(v6) = addrs[1] else {
            panic!()
        };
        assert_eq!(v6.scope_id(), 3);
    }
}
