//! An error that every copy of the value carrying it shares ([`Shared`]):
//! why a call ended is cloned to every thread that asks, and a typed error
//! inside it (an `io::Error`, a codec's or a crate's own) is seldom
//! `Clone`, so it is kept behind an `Arc` instead of being turned into a
//! string. It reads, and compares, as what it says.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A typed error behind an `Arc`, so that what carries it stays `Clone`.
/// It displays as the error does (flags included, so `{:#}` shows an
/// `anyhow::Error`'s whole chain), its source is the error's source, and
/// two are equal when they say the same (`{:#}`): few errors are
/// `PartialEq`, an `io::Error` never.
pub struct Shared<E>(Arc<E>);

impl<E> Shared<E> {
    /// Shares `error`.
    pub fn new(error: E) -> Self {
        Shared(Arc::new(error))
    }

    /// Shares an error that comes boxed (`bincode::Error`), without a copy.
    pub fn from_box(error: Box<E>) -> Self {
        Shared(Arc::from(error))
    }
}

impl<E> From<E> for Shared<E> {
    fn from(error: E) -> Self {
        Shared::new(error)
    }
}

impl<E> Clone for Shared<E> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<E> Deref for Shared<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.0
    }
}

impl<E: fmt::Debug> fmt::Debug for Shared<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<E: fmt::Display> fmt::Display for Shared<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl<E: std::error::Error> std::error::Error for Shared<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl<E: fmt::Display> PartialEq for Shared<E> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || format!("{:#}", self.0) == format!("{:#}", other.0)
    }
}

impl<E: fmt::Display> Eq for Shared<E> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_and_compares_as_the_error_it_shares() {
        let e = Shared::new(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"));
        assert_eq!(e.to_string(), "gone");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        assert_eq!(e, e.clone());
        assert_eq!(
            e,
            Shared::new(std::io::Error::other("gone")),
            "by what it says"
        );
        assert_ne!(e, Shared::new(std::io::Error::other("here")));
        let chain = Shared::new(anyhow::anyhow!("inner").context("outer"));
        assert_eq!(format!("{chain}"), "outer");
        assert_eq!(format!("{chain:#}"), "outer: inner");
    }
}
