//! Whom `vidchat connect` calls and where: an address as given, a listener
//! heard on the local network (by name, or the only one there), or a host
//! of that name; and `vidchat peers`, who is listening nearby.

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{Result, anyhow, bail};

use crate::net::nearby::{self, Found, LOOK_TIME, Listener};

/// Whom `connect` calls, as the command line gave it (checked by `cli`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallTarget {
    /// The only listener heard nearby, or the one the person picks.
    Nearby,
    /// The listener heard nearby under `name`; else the host of that name,
    /// at `port`.
    Name { name: String, port: u16 },
    /// A host name (or an address with its interface) and a port, as the
    /// system resolves them.
    Host { host: String, port: u16 },
    /// An address, called as it is; `hint` says how to write what may have
    /// been meant instead, for when the call fails.
    Address {
        addr: SocketAddr,
        hint: Option<String>,
    },
}

/// Where to call: how to name it to the person, the addresses, and a hint
/// for a failed call.
pub struct Destination {
    pub whom: String,
    pub addrs: Vec<SocketAddr>,
    pub hint: Option<String>,
    /// The name the listener was found under nearby: whoever answers is
    /// checked against the key known for it, whatever it calls itself.
    pub name: Option<String>,
}

impl Destination {
    fn at(whom: String, addrs: Vec<SocketAddr>) -> Destination {
        Destination {
            whom,
            addrs,
            hint: None,
            name: None,
        }
    }
}

/// Finds where `target` is.
pub fn find(target: &CallTarget) -> Result<Destination> {
    match target {
        CallTarget::Nearby => call_nearby(),
        CallTarget::Address { addr, hint } => Ok(Destination {
            whom: addr.to_string(),
            addrs: vec![*addr],
            hint: hint.clone(),
            name: None,
        }),
        CallTarget::Host { host, port } => {
            let addrs = resolve(host, *port)?;
            Ok(Destination::at(host_port(host, *port), addrs))
        }
        CallTarget::Name { name, port } => call_by_name(name, *port),
    }
}

/// "host:9999", "[fe80::1%2]:9999".
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The addresses of `host` at `port`, as the system resolves them.
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| anyhow!("cannot find the host {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        bail!("{host} resolves to no address");
    }
    Ok(addrs)
}

/// Names that are this machine: no listener nearby is called that way.
fn is_this_machine(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// A listener heard nearby under `name`, else the host of that name.
fn call_by_name(target: &str, port: u16) -> Result<Destination> {
    if is_this_machine(target) {
        let addrs = resolve(target, port)?;
        return Ok(Destination::at(host_port(target, port), addrs));
    }
    let name = target.strip_suffix('.').unwrap_or(target);
    let name = name.strip_suffix(".local").unwrap_or(name);
    let found = nearby::look(LOOK_TIME, Some(name))?;
    match found.named(name).as_slice() {
        [one] => return Ok(calling(one)),
        [] => {}
        several => bail!(
            "{} listeners nearby are called {name}; call one by its address:{}",
            several.len(),
            several
                .iter()
                .filter_map(|l| l.address())
                .map(|a| format!("\n    vidchat connect {a}"))
                .collect::<String>()
        ),
    }
    // Not a listener heard nearby: perhaps a host the system knows.
    if let Ok(addrs) = resolve(target, port) {
        eprintln!(
            "no listener called {name} answered nearby; calling the host {}",
            host_port(target, port)
        );
        return Ok(Destination::at(host_port(target, port), addrs));
    }
    if found.listeners.is_empty() {
        bail!(
            "no listener called {name} answered on the local network within {} s, and no host is called {target}; {NOT_FOUND_HELP}",
            LOOK_TIME.as_secs()
        )
    }
    bail!(
        "no listener called {name} nearby, and no host is called {target}; found:\n{}",
        listing(&found)
    )
}

/// Why nothing may have answered, and what works anyway.
const NOT_FOUND_HELP: &str = "is `vidchat listen` running on the other machine? A firewall blocking UDP port 5353 (as Windows does on a network marked Public), a guest network that keeps clients apart, or a network that drops multicast can hide it: then type the address it prints, vidchat connect IP:PORT";

/// No listener answered a look: what was tried, and what to do.
fn nobody_answered() -> anyhow::Error {
    anyhow!(
        "no vidchat listener answered on the local network within {} s (multicast DNS, {}); {NOT_FOUND_HELP}",
        LOOK_TIME.as_secs(),
        nearby::SERVICE_TYPE
    )
}

/// The listener nearby: the only one, or the one the person picks.
fn call_nearby() -> Result<Destination> {
    let found = nearby::look(LOOK_TIME, None)?;
    match found.listeners.as_slice() {
        [] => Err(nobody_answered()),
        [one] => Ok(calling(one)),
        _ if std::io::stdin().is_terminal() => {
            eprintln!("{} listeners nearby:", found.listeners.len());
            for (i, l) in found.listeners.iter().enumerate() {
                eprintln!("  {}. {}", i + 1, describe_listener(l));
            }
            eprint!("call which? [1-{}] ", found.listeners.len());
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let line = line.trim();
            let chosen = match line.parse::<usize>() {
                Ok(n) => n.checked_sub(1).and_then(|i| found.listeners.get(i)),
                Err(_) => found.named(line).first().copied(),
            };
            match chosen {
                Some(listener) => Ok(calling(listener)),
                None => bail!("no listener chosen"),
            }
        }
        _ => bail!(
            "{} listeners nearby; pick one:\n{}",
            found.listeners.len(),
            listing(&found)
        ),
    }
}

/// Says whom `connect` calls, and returns it and where.
fn calling(listener: &Listener) -> Destination {
    eprintln!(
        "calling {}, found on the local network",
        describe_listener(listener)
    );
    Destination {
        name: Some(listener.name.clone()),
        ..Destination::at(listener.name.clone(), listener.addrs.clone())
    }
}

/// "laptop (192.168.1.23:9999)".
fn describe_listener(listener: &Listener) -> String {
    match listener.address() {
        Some(addr) => format!("{} ({addr})", listener.name),
        None => listener.name.clone(),
    }
}

/// One line per listener, as the command that calls it.
fn listing(found: &Found) -> String {
    let width = found
        .listeners
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<String> = found
        .listeners
        .iter()
        .map(|l| {
            let addr = l.address().map(|a| a.to_string()).unwrap_or_default();
            format!("    vidchat connect {:width$}    ({addr})", l.name)
        })
        .collect();
    if found.ignored > 0 {
        lines.push(format!(
            "    ({} more announcements ignored: at most {} listeners are kept)",
            found.ignored,
            nearby::MAX_LISTENERS
        ));
    }
    lines.join("\n")
}

/// `vidchat peers`: who is listening nearby, once.
pub fn peers() -> Result<()> {
    let found = nearby::look(LOOK_TIME, None)?;
    if found.listeners.is_empty() {
        return Err(nobody_answered());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{} listening nearby:", found.listeners.len());
    let _ = writeln!(out, "{}", listing(&found));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_is_this_machine_and_is_not_looked_for_nearby() {
        assert!(is_this_machine("localhost"));
        assert!(is_this_machine("LOCALHOST."));
        assert!(is_this_machine("app.localhost"));
        assert!(!is_this_machine("laptop-a"));
        let found = find(&CallTarget::Name {
            name: "localhost".into(),
            port: 9999,
        })
        .unwrap();
        assert!(
            found
                .addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 9999)
        );
        assert_eq!(found.whom, "localhost:9999");
    }
}
