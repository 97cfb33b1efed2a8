//! Errors of the build-script helper.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why code generation failed.
///
/// Its `Debug` reads as its `Display`, so that a `build.rs` returning
/// `Result<(), Box<dyn Error>>` prints the message (`file:line:column:
/// what`), not a dump of its fields.
#[derive(thiserror::Error)]
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
        /// The whole message, with file, line and column (and, for an
        /// import not found, the include paths searched).
        message: String,
        /// The parser's error.
        #[source]
        source: Box<protox::Error>,
    },
    /// `protoc` failed (with [`use_protoc`](super::Builder::use_protoc)).
    #[error("protoc failed: {0}")]
    Protoc(#[source] std::io::Error),
    /// [`pooled_client_path`](super::Builder::pooled_client_path) is not a
    /// Rust path.
    #[error("pooled_client_path = {path:?}: not a Rust path such as `::my_sdk::pooled_client`")]
    InvalidPath {
        /// The path as given.
        path: String,
    },
    /// Generating or writing the Rust code failed.
    #[error("code generation failed: {0}")]
    Generate(#[source] std::io::Error),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// Locates a parser error: its file, and its line and column from the
    /// first labelled span; a file not found lists `includes`, the paths
    /// searched.
    pub(crate) fn from_protox(error: protox::Error, includes: &[&Path]) -> Self {
        use miette::Diagnostic;

        let file = error.file().map(str::to_owned);
        let position = error
            .labels()
            .and_then(|mut labels| labels.next())
            .and_then(|label| {
                let contents = error.source_code()?.read_span(label.inner(), 0, 0).ok()?;
                Some((contents.line() + 1, contents.column() + 1))
            });
        let message = match (&file, position) {
            (Some(file), Some((line, column))) => format!("{file}:{line}:{column}: {error}"),
            (Some(file), None) => format!("{file}: {error}"),
            (None, _) => error.to_string(),
        };
        let message = if error.is_file_not_found() {
            let searched: Vec<String> = includes.iter().map(|p| p.display().to_string()).collect();
            format!(
                "{message} (include paths searched: {})",
                searched.join(", ")
            )
        } else {
            message
        };
        Self::Parse {
            file,
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
            message,
            source: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::Error;

    fn compile(dir: &Path, name: &str) -> Result<(), Error> {
        crate::build::configure()
            .out_dir(dir)
            .emit_rerun_if_changed(false)
            .compile_protos(&[dir.join(name)], &[dir.to_path_buf()])
    }

    fn scratch(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pooled-client-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_syntax_error_names_file_line_and_column() {
        let dir = scratch("syntax");
        std::fs::write(
            dir.join("broken.proto"),
            "syntax = \"proto3\";\npackage p;\nmessage M {\n  string name = ;\n}\n",
        )
        .unwrap();
        let error = compile(&dir, "broken.proto").unwrap_err();
        match &error {
            Error::Parse {
                file, line, column, ..
            } => {
                assert_eq!(file.as_deref(), Some("broken.proto"));
                assert_eq!((*line, *column), (Some(4), Some(17)), "{error}");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(
            error.to_string().starts_with("broken.proto:4:17: "),
            "{error}"
        );
    }

    #[test]
    fn a_missing_proto_names_the_path() {
        let dir = scratch("missing");
        let error = compile(&dir, "absent.proto").unwrap_err();
        assert!(matches!(&error, Error::NotFound { path } if path.ends_with("absent.proto")));
        assert!(error.to_string().contains("absent.proto"), "{error}");
    }

    #[test]
    fn a_missing_import_names_the_import_and_where() {
        let dir = scratch("import");
        std::fs::write(
            dir.join("importer.proto"),
            "syntax = \"proto3\";\nimport \"nowhere.proto\";\n",
        )
        .unwrap();
        let error = compile(&dir, "importer.proto").unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("nowhere.proto") && text.contains("importer.proto:2:"),
            "{text}"
        );
        assert!(
            text.contains(&format!("include paths searched: {}", dir.display())),
            "{text}"
        );
        // What a build.rs returning Box<dyn Error> prints: the message.
        assert_eq!(format!("{error:?}"), text);
    }
}
