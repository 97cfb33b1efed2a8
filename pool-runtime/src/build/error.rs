//! Errors of the build-script helper.

use std::path::PathBuf;

/// Why code generation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A proto file given to compile does not exist.
    #[error("proto file not found: {}", path.display())]
    NotFound {
        /// The path that was looked for.
        path: PathBuf,
    },
    /// A proto file (or one it imports) could not be read or parsed.
    #[error("{message}")]
    Parse {
        /// The file at fault, as named in the include path, if known.
        file: Option<String>,
        /// The 1-based line of the fault, if known.
        line: Option<usize>,
        /// The 1-based column of the fault, if known.
        column: Option<usize>,
        /// The whole message, with file, line and column.
        message: String,
        /// The parser's error.
        #[source]
        source: Box<protox::Error>,
    },
    /// `protoc` failed (with [`use_protoc`](super::Builder::use_protoc)).
    #[error("protoc failed: {0}")]
    Protoc(#[source] std::io::Error),
    /// Generating or writing the Rust code failed.
    #[error("code generation failed: {0}")]
    Generate(#[source] std::io::Error),
}

impl Error {
    pub(crate) fn from_protox(error: protox::Error) -> Self {
        let file = error.file().map(str::to_owned);
        let message = format!("{error}");
        Self::Parse {
            file,
            line: None,
            column: None,
            message,
            source: Box::new(error),
        }
    }
}
