//! The build-script helper: compiles `.proto` files into tonic's clients and
//! servers plus a pooled client for every service, without `protoc`.
//!
//! Enable it under `[build-dependencies]`, where it compiles neither tokio
//! nor hyper:
//!
//! ```toml
//! [build-dependencies]
//! pooled-client = { version = "0.1", default-features = false, features = ["build"] }
//! ```
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     pooled_client::build::compile_protos("proto/helloworld.proto")?;
//!     Ok(())
//! }
//! ```
//!
//! After `tonic::include_proto!("helloworld")`, the package module holds
//! tonic's `greeter_client` and `greeter_server` modules and
//! `PooledGreeterClient`. The pooled clients are annotated structs that the
//! `#[pooled_client]` attribute expands, the same attribute users write by
//! hand, so the two paths cannot drift apart.

mod error;
mod generator;

use std::path::{Path, PathBuf};

pub use error::Error;

use generator::PooledGenerator;

/// Compiles one proto file, with its folder as the include path.
///
/// # Errors
///
/// [`Error`] when the file is missing, does not parse, or code cannot be
/// written.
pub fn compile_protos(proto: impl AsRef<Path>) -> Result<(), Error> {
    let proto = proto.as_ref();
    let include = proto
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    configure().compile_protos(&[proto], &[include.as_path()])
}

/// Starts configuring code generation.
pub fn configure() -> Builder {
    Builder::default()
}

/// Settings for code generation, in tonic-build's style: each method takes
/// and returns `self`.
#[must_use = "a builder does nothing until `compile_protos` is called"]
pub struct Builder {
    tonic: tonic_prost_build::Builder,
    prost: prost_build::Config,
    build_client: bool,
    build_pooled: bool,
    use_protoc: bool,
    emit_rerun_if_changed: bool,
    out_dir: Option<PathBuf>,
    pooled_client_path: String,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            tonic: tonic_prost_build::configure(),
            prost: prost_build::Config::new(),
            build_client: true,
            build_pooled: true,
            use_protoc: false,
            emit_rerun_if_changed: true,
            out_dir: None,
            pooled_client_path: generator::DEFAULT_CRATE.to_owned(),
        }
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("build_client", &self.build_client)
            .field("build_pooled", &self.build_pooled)
            .field("use_protoc", &self.use_protoc)
            .field("out_dir", &self.out_dir)
            .field("pooled_client_path", &self.pooled_client_path)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Whether to generate tonic's clients and the pooled clients.
    /// Default: true.
    pub fn build_client(mut self, enable: bool) -> Self {
        self.build_client = enable;
        self.tonic = self.tonic.build_client(enable);
        self
    }

    /// Whether to generate tonic's servers. Default: true.
    pub fn build_server(mut self, enable: bool) -> Self {
        self.tonic = self.tonic.build_server(enable);
        self
    }

    /// Whether to generate a `Pooled<Service>Client` for each service (needs
    /// `build_client`). Default: true.
    pub fn build_pooled(mut self, enable: bool) -> Self {
        self.build_pooled = enable;
        self
    }

    /// The path the generated pooled clients name this crate by, for a
    /// crate that re-exports it (an SDK whose users depend on it alone):
    /// the attribute is then `#[my_sdk::pooled_client::pooled_client(...,
    /// crate = my_sdk::pooled_client)]`, as with serde's `crate = "..."`.
    /// Default: `::pooled_client`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), pooled_client::build::Error> {
    /// pooled_client::build::configure()
    ///     .pooled_client_path("::my_sdk::pooled_client")
    ///     .compile_protos(&["proto/orders.proto"], &["proto"])
    /// # }
    /// ```
    pub fn pooled_client_path(mut self, path: impl Into<String>) -> Self {
        self.pooled_client_path = path.into();
        self
    }

    /// Where to write the generated code. Default: `$OUT_DIR`.
    pub fn out_dir(mut self, out_dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(out_dir.as_ref().to_path_buf());
        self
    }

    /// Parses protos with the system's `protoc` (found as prost-build finds
    /// it: `$PROTOC`, then `PATH`) instead of the built-in parser.
    /// Default: false.
    pub fn use_protoc(mut self, enable: bool) -> Self {
        self.use_protoc = enable;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for every proto file read.
    /// Default: true.
    pub fn emit_rerun_if_changed(mut self, enable: bool) -> Self {
        self.emit_rerun_if_changed = enable;
        self
    }

    /// Adds an attribute to the generated messages and enums matched by `path`
    /// (prost-build's `type_attribute`).
    pub fn type_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.prost.type_attribute(path, attribute);
        self
    }

    /// Adds an attribute to the generated messages matched by `path`.
    pub fn message_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.prost.message_attribute(path, attribute);
        self
    }

    /// Adds an attribute to the generated fields matched by `path`.
    pub fn field_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.prost.field_attribute(path, attribute);
        self
    }

    /// Uses an existing Rust type for a proto path instead of generating one
    /// (prost-build's `extern_path`).
    pub fn extern_path(mut self, proto_path: impl AsRef<str>, rust_path: impl AsRef<str>) -> Self {
        self.prost
            .extern_path(proto_path.as_ref(), rust_path.as_ref());
        self
    }

    /// Generates `bytes::Bytes` instead of `Vec<u8>` for the `bytes` fields
    /// matched by `paths`.
    pub fn bytes<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.prost.bytes(paths);
        self
    }

    /// Any other tonic-prost-build setting: client and server attributes,
    /// codec path, comments, and so on.
    pub fn with_tonic(
        mut self,
        configure: impl FnOnce(tonic_prost_build::Builder) -> tonic_prost_build::Builder,
    ) -> Self {
        self.tonic = configure(self.tonic);
        self
    }

    /// Any other prost-build setting.
    pub fn with_prost(mut self, configure: impl FnOnce(&mut prost_build::Config)) -> Self {
        configure(&mut self.prost);
        self
    }

    /// Compiles `protos`, resolving imports in `includes`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] names a proto that is not there; [`Error::Parse`]
    /// gives the file, line and column of a syntax error; [`Error::Protoc`]
    /// and [`Error::Generate`] pass on the failures of `protoc` and of code
    /// generation.
    pub fn compile_protos(
        mut self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Error> {
        check_path(&self.pooled_client_path)?;
        let descriptors = if self.use_protoc {
            self.prost
                .load_fds(protos, includes)
                .map_err(Error::Protoc)?
        } else {
            parse_with_protox(protos, includes, self.emit_rerun_if_changed)?
        };
        if self.use_protoc && self.emit_rerun_if_changed {
            for proto in protos {
                println!("cargo:rerun-if-changed={}", proto.as_ref().display());
            }
        }
        if let Some(out_dir) = &self.out_dir {
            self.prost.out_dir(out_dir);
        }
        let generator = PooledGenerator::new(
            self.tonic.service_generator(),
            (self.build_client && self.build_pooled).then_some(self.pooled_client_path),
        );
        self.prost.service_generator(Box::new(generator));
        self.prost.compile_fds(descriptors).map_err(Error::Generate)
    }
}

/// Checks that `path` reads as a Rust path (`::a::b`, `crate::a`), so a
/// typo fails here and not in the generated code.
fn check_path(path: &str) -> Result<(), Error> {
    let segments = path.strip_prefix("::").unwrap_or(path).split("::");
    let is_identifier = |s: &str| {
        let s = s.strip_prefix("r#").unwrap_or(s);
        s.chars()
            .next()
            .is_some_and(|c| c == '_' || c.is_alphabetic())
            && s.chars().all(|c| c == '_' || c.is_alphanumeric())
    };
    if segments.clone().all(is_identifier) {
        return Ok(());
    }
    Err(Error::InvalidPath {
        path: path.to_owned(),
    })
}

fn parse_with_protox(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
    emit_rerun_if_changed: bool,
) -> Result<prost_types::FileDescriptorSet, Error> {
    for proto in protos {
        let proto = proto.as_ref();
        if !proto.is_file() {
            return Err(Error::NotFound {
                path: proto.to_path_buf(),
            });
        }
    }
    let includes: Vec<&Path> = includes.iter().map(AsRef::as_ref).collect();
    let mut compiler =
        protox::Compiler::new(&includes).map_err(|e| Error::from_protox(e, &includes))?;
    compiler.include_imports(true).include_source_info(true);
    compiler
        .open_files(protos.iter().map(AsRef::as_ref))
        .map_err(|e| Error::from_protox(e, &includes))?;
    if emit_rerun_if_changed {
        for file in compiler.files() {
            if let Some(path) = file.path() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Ok(compiler.file_descriptor_set())
}

/// The etcd client of feature `etcd` is generated by this helper from
/// `proto/etcd/etcd.proto` and committed (so that the runtime needs no
/// code generation); this checks that it is current.
/// `UPDATE_GENERATED=1 cargo test -p pooled-client --features build` rewrites it.
#[cfg(test)]
mod generated {
    #[test]
    fn the_etcd_client_is_current() {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = std::env::temp_dir().join(format!("pooled-client-etcd-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        super::configure()
            .build_server(false)
            .build_pooled(false)
            .emit_rerun_if_changed(false)
            // The runtime has no tonic transport: clients over the pool only.
            .with_tonic(|tonic| tonic.build_transport(false))
            .out_dir(&out)
            .compile_protos(
                &[format!("{root}/proto/etcd/etcd.proto")],
                &[format!("{root}/proto/etcd")],
            )
            .unwrap();
        let fresh = std::fs::read_to_string(out.join("etcdserverpb.rs")).unwrap();
        let committed_path = format!("{root}/src/etcd/etcdserverpb.rs");
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            std::fs::write(&committed_path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&committed_path).unwrap();
        assert!(
            fresh == committed,
            "src/etcd/etcdserverpb.rs is out of date: run UPDATE_GENERATED=1 cargo test -p pooled-client --features build"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crate_path_must_read_as_a_rust_path() {
        for good in [
            "::pooled_client",
            "my_sdk::pooled_client",
            "crate::sdk::pc",
            "r#type::x",
        ] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in ["", "my sdk::x", "a::", "::", "a::1b", "\"a\""] {
            let error = check_path(bad).unwrap_err();
            assert!(
                error.to_string().contains("pooled_client_path"),
                "{bad}: {error}"
            );
        }
        let error = configure()
            .pooled_client_path("my-sdk::pooled_client")
            .compile_protos(&["missing.proto"], &["."])
            .unwrap_err();
        assert!(matches!(error, Error::InvalidPath { .. }), "{error}");
    }
}
