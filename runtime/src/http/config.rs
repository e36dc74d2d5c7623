//! [`HttpConfig`]: where the live export listens.

use std::net::{Ipv4Addr, SocketAddr};

/// Where [`Runtime::serve_http`](crate::Runtime::serve_http) listens.
///
/// The default is `127.0.0.1`, on a port the system picks
/// ([`HttpServer::local_addr`](crate::HttpServer::local_addr) tells which):
/// only processes on the same machine can connect. A fixed port on the
/// loopback interface is [`HttpConfig::localhost`]; any other address takes
/// [`HttpConfig::bind`], which says so in its name because the endpoints
/// expose the application's internals.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use cellrt::HttpConfig;
///
/// assert_eq!(HttpConfig::default().addr(), "127.0.0.1:0".parse::<SocketAddr>()?);
/// assert_eq!(HttpConfig::localhost(9464).addr(), "127.0.0.1:9464".parse::<SocketAddr>()?);
/// assert!(HttpConfig::localhost(9464).is_loopback());
/// assert!(!HttpConfig::bind("0.0.0.0:9464".parse()?).is_loopback());
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    addr: SocketAddr,
}

impl HttpConfig {
    /// Listens on `127.0.0.1:port`; port 0 lets the system pick a free one.
    pub fn localhost(port: u16) -> Self {
        HttpConfig { addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)) }
    }

    /// Listens on `addr`, whatever interface it is.
    ///
    /// On an address other than a loopback one (`127.0.0.0/8`, `::1`), any
    /// host that reaches it reads the application's internals: cell paths
    /// and types, failure texts, journal entries. Put it behind a reverse
    /// proxy that authenticates, or keep the default and reach it over an
    /// SSH tunnel (`docs/observation.md` in the repository, "Live export").
    pub fn bind(addr: SocketAddr) -> Self {
        HttpConfig { addr }
    }

    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether only this machine can connect: the address is a loopback one.
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }
}

impl Default for HttpConfig {
    /// `127.0.0.1`, on a port the system picks.
    fn default() -> Self {
        HttpConfig::localhost(0)
    }
}
