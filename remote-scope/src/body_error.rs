//! An application's error, from a body to its caller: any `std::error::Error` a body meets with
//! `?`, kept as text that travels.

use std::fmt;

use serde::Serialize;

/// An error a body gives its caller: the message of the error it came from, that error's type
/// name and the messages of its sources. Any [`std::error::Error`] converts into it, so a body
/// that returns `Result<T, BodyError>` can use `?` on whatever it calls, without wrapping each
/// error by hand; the caller gets it back whole, and can tell errors apart by type
/// ([`BodyError::is`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use std::num::ParseIntError;
/// use remote_scope::{remote, BodyError, Node};
///
/// let node = Node::builder().build()?;
/// let me = node.id().clone();
/// let text = String::from("forty-two");
/// let parsed = node
///     .run(remote!(me, [text: String], {
///         let n: u64 = text.parse()?;
///         Ok::<_, BodyError>(n * 2)
///     }))
///     .await?;
/// let err = parsed.unwrap_err();
/// assert!(err.is::<ParseIntError>());
/// assert_eq!(err.message(), "invalid digit found in string");
/// # Ok(()) }
/// ```
///
/// It does not implement [`std::error::Error`] itself (that would make the conversion from
/// every error overlap with the conversion of a type into itself, as with `anyhow::Error`);
/// `?` turns it into a [`crate::Error`] ([`crate::Error::Body`]) or a
/// `Box<dyn std::error::Error + Send + Sync>`, which do.
// `Deserialize` is in `error/wire.rs`, beside `Error`'s.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct BodyError {
    type_name: String,
    message: String,
    sources: Vec<String>,
}

impl BodyError {
    /// An error of these parts, as they came from another peer.
    pub(crate) fn from_parts(type_name: String, message: String, sources: Vec<String>) -> Self {
        BodyError {
            type_name,
            message,
            sources,
        }
    }

    /// An error with this message and no type of its own (its type name is `""`).
    ///
    /// ```
    /// let err = remote_scope::BodyError::new("quota exceeded");
    /// assert_eq!(err.to_string(), "quota exceeded");
    /// ```
    pub fn new(message: impl Into<String>) -> BodyError {
        BodyError {
            type_name: String::new(),
            message: message.into(),
            sources: Vec::new(),
        }
    }

    /// The error's message (its `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The type of the error it came from, as [`std::any::type_name`] spells it on the peer that
    /// ran the body (e.g. `core::num::error::ParseIntError`); `""` for [`BodyError::new`].
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// Whether it came from an error of type `E` (compared by type name, which a different
    /// compiler version on the other peer may spell otherwise).
    pub fn is<E: ?Sized + 'static>(&self) -> bool {
        self.type_name == std::any::type_name::<E>()
    }

    /// The messages of the error's sources, outermost first.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
}

impl<E: std::error::Error> From<E> for BodyError {
    fn from(error: E) -> BodyError {
        let mut sources = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            sources.push(cause.to_string());
            source = cause.source();
        }
        BodyError {
            type_name: std::any::type_name::<E>().to_owned(),
            message: error.to_string(),
            sources,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The message, the type and the sources, as `main` shows an error it returns.
impl fmt::Debug for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.type_name.is_empty() {
            write!(f, " ({})", self.type_name)?;
        }
        if !self.sources.is_empty() {
            f.write_str("\n\nCaused by:")?;
            for source in &self.sources {
                write!(f, "\n    {source}")?;
            }
        }
        Ok(())
    }
}

/// A [`BodyError`] as a `std::error::Error`, with its sources as a chain.
#[derive(Debug)]
struct AsStd {
    message: String,
    source: Option<Box<AsStd>>,
}

impl fmt::Display for AsStd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AsStd {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<BodyError> for Box<dyn std::error::Error + Send + Sync> {
    fn from(error: BodyError) -> Self {
        let chain = error
            .sources
            .into_iter()
            .rev()
            .fold(None, |source, message| {
                Some(Box::new(AsStd { message, source }))
            });
        Box::new(AsStd {
            message: error.message,
            source: chain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("could not read the config")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn failing() -> Result<(), BodyError> {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        Err(Outer(inner))?;
        Ok(())
    }

    #[test]
    fn any_error_converts_with_its_type_and_sources_and_travels() {
        let err = failing().unwrap_err();
        assert!(err.is::<Outer>());
        assert!(!err.is::<std::io::Error>());
        assert_eq!(err.message(), "could not read the config");
        assert_eq!(err.sources(), ["no such file"]);
        assert_eq!(
            format!("{err:?}"),
            format!(
                "could not read the config ({})\n\nCaused by:\n    no such file",
                std::any::type_name::<Outer>()
            )
        );
        let bytes = rmp_serde::to_vec(&err).expect("encodes");
        let back: BodyError = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(back, err);
    }

    #[test]
    fn as_a_std_error_it_keeps_its_chain() {
        let boxed: Box<dyn std::error::Error + Send + Sync> = failing().unwrap_err().into();
        assert_eq!(boxed.to_string(), "could not read the config");
        assert_eq!(
            boxed.source().map(|s| s.to_string()).as_deref(),
            Some("no such file")
        );
        let plain = BodyError::new("quota exceeded");
        assert_eq!(
            (plain.type_name(), format!("{plain:?}").as_str()),
            ("", "quota exceeded")
        );
    }
}
