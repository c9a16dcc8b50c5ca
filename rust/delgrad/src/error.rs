//! The one error type of the crate: every public function validates its input and
//! reports what is wrong with which argument instead of panicking.

use std::fmt;

/// Errors returned by the core. Messages name the argument and the expected form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An array has the wrong shape.
    #[error("{arg}: expected shape {expected}, got {actual}")]
    Shape {
        /// Name of the argument.
        arg: String,
        /// Expected shape, e.g. `[batch, 4]`.
        expected: String,
        /// Actual shape.
        actual: String,
    },
    /// A value is outside its domain (NaN, negative delay, tau <= 0, ...).
    #[error("{arg}: {message}")]
    Value {
        /// Name of the argument.
        arg: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// An option is unknown or inconsistent with the others.
    #[error("option {arg}: {message}")]
    Option {
        /// Name of the option.
        arg: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// Training produced non-finite parameters or losses.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// A buffer whose size follows from an argument cannot be allocated (too large for the
    /// address space or the memory available).
    #[error("{arg}: {message}")]
    Memory {
        /// Name of the argument whose value sets the size.
        arg: String,
        /// Which buffer, how many values and how much memory it needs.
        message: String,
    },
    /// The call was cancelled ([`Cancel`](crate::cancel::Cancel)) before it finished; the objects
    /// it works on are as they were before the call.
    #[error("cancelled before the call finished")]
    Cancelled,
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A shape error for `arg`.
    pub fn shape(arg: impl Into<String>, expected: impl fmt::Display, actual: impl fmt::Display) -> Self {
        Error::Shape {
            arg: arg.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }

    /// A value error for `arg`.
    pub fn value(arg: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Value {
            arg: arg.into(),
            message: message.into(),
        }
    }

    /// An option error for `arg`.
    pub fn option(arg: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Option {
            arg: arg.into(),
            message: message.into(),
        }
    }

    /// A memory error for `arg` (see [`crate::alloc`]).
    pub fn memory(arg: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Memory {
            arg: arg.into(),
            message: message.into(),
        }
    }

    /// The error with its argument named as a part of `within` (`within.arg`), e.g. the field
    /// of a config inside the config; errors without an argument are returned unchanged.
    pub fn within(self, within: &str) -> Self {
        match self {
            Error::Shape { arg, expected, actual } => Error::Shape {
                arg: format!("{within}.{arg}"),
                expected,
                actual,
            },
            Error::Value { arg, message } => Error::value(format!("{within}.{arg}"), message),
            Error::Option { arg, message } => Error::option(format!("{within}.{arg}"), message),
            Error::Memory { arg, message } => Error::memory(format!("{within}.{arg}"), message),
            e @ (Error::Diverged(_) | Error::Cancelled) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_names_the_argument_inside_its_parent() {
        let v = Error::value("tau_m", "bad").within("layers[0]");
        assert_eq!(v.to_string(), "layers[0].tau_m: bad");
        let o = Error::option("kind", "unknown").within("state.tensors[1]");
        assert_eq!(o.to_string(), "option state.tensors[1].kind: unknown");
        let s = Error::shape("w", "[1]", "[2]").within("layers[2]");
        assert_eq!(s.to_string(), "layers[2].w: expected shape [1], got [2]");
        let d = Error::Diverged("loss is NaN".into());
        assert_eq!(d.clone().within("layers[0]"), d);
    }
}
