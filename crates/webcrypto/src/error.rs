//! Errors as the Web Cryptography spec names them: each carries the name
//! of the `DOMException` (or `TypeError`) JavaScript sees, and a message
//! that never contains key material.

/// The kind of failure, by the name the spec gives its exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorName {
    /// A WebIDL type error: a missing or mistyped member of a dictionary.
    Type,
    /// The algorithm, format or parameter value is not supported.
    NotSupported,
    /// The key cannot be used this way (wrong usage, type or algorithm).
    InvalidAccess,
    /// The key data (or a JWK member) is malformed.
    Data,
    /// The operation failed (a tag or padding did not verify, bad lengths).
    Operation,
    /// Invalid usages for the key, or a required usage missing.
    Syntax,
}

impl ErrorName {
    /// The name JavaScript sees (`error.name`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::Type => "TypeError",
            ErrorName::NotSupported => "NotSupportedError",
            ErrorName::InvalidAccess => "InvalidAccessError",
            ErrorName::Data => "DataError",
            ErrorName::Operation => "OperationError",
            ErrorName::Syntax => "SyntaxError",
        }
    }
}

/// A failed operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", name.as_str())]
pub struct Error {
    pub name: ErrorName,
    pub message: String,
}

impl Error {
    pub(crate) fn new(name: ErrorName, message: impl Into<String>) -> Error {
        Error { name, message: message.into() }
    }
}

macro_rules! constructors {
    ($($fn:ident => $name:ident),* $(,)?) => {
        $(
            pub(crate) fn $fn(message: impl Into<String>) -> Error {
                Error::new(ErrorName::$name, message)
            }
        )*
    };
}

constructors! {
    type_error => Type,
    not_supported => NotSupported,
    invalid_access => InvalidAccess,
    data => Data,
    operation => Operation,
    syntax => Syntax,
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
