//! Appends a `#[pooled_client]` struct after tonic's code for each service.
//!
//! The struct is what a user would write by hand; the attribute expands it.
//! Keeping the attribute the only generator of wrapper code means the two
//! paths cannot drift apart.

use prost_build::{Comments, Method, Service, ServiceGenerator};

/// tonic's service generator, followed by the pooled client's declaration.
pub(crate) struct PooledGenerator {
    tonic: Box<dyn ServiceGenerator>,
    /// The runtime crate's path, or `None` for no pooled clients.
    pooled: Option<String>,
}

impl PooledGenerator {
    /// `pooled` is the path the generated code names the runtime crate by
    /// (`::pooled_client` unless it is re-exported), or `None` for tonic's
    /// code alone.
    pub(crate) fn new(tonic: Box<dyn ServiceGenerator>, pooled: Option<String>) -> Self {
        Self { tonic, pooled }
    }
}

impl ServiceGenerator for PooledGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let declaration = self.pooled.as_deref().map(|krate| declare(&service, krate));
        self.tonic.generate(service, buf);
        if let Some(declaration) = declaration {
            buf.push_str(&declaration);
        }
    }

    fn finalize(&mut self, buf: &mut String) {
        self.tonic.finalize(buf);
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.tonic.finalize_package(package, buf);
    }
}

/// The annotated struct for `service`, as source text, naming the runtime
/// crate `krate`.
pub(crate) fn declare(service: &Service, krate: &str) -> String {
    // tonic-build names the client module and type this way.
    let client_module = format!("{}_client", naive_snake_case(&service.name));
    let full_name = if service.package.is_empty() {
        service.proto_name.clone()
    } else {
        format!("{}.{}", service.package, service.proto_name)
    };
    let mut out = format!(
        "/// A pooled client for `{full_name}`: share it, clone it, call it from any task.\n"
    );
    let docs = doc_lines(&service.comments, "");
    if !docs.is_empty() {
        out.push_str("///\n");
        out.push_str(&docs);
    }
    // The attribute is told the path only when it is not its default.
    let crate_argument = if krate == DEFAULT_CRATE {
        String::new()
    } else {
        format!(", crate = {krate}")
    };
    out.push_str(&format!(
        "#[{krate}::pooled_client(client = {client_module}::{name}Client{crate_argument})]\n\
         pub struct Pooled{name}Client {{\n",
        name = service.name
    ));
    for method in &service.methods {
        out.push_str(&field(method, krate));
    }
    out.push_str("}\n");
    out
}

/// The runtime crate's path when nothing re-exports it.
pub(crate) const DEFAULT_CRATE: &str = "::pooled_client";

fn field(method: &Method, krate: &str) -> String {
    let kind = match (method.client_streaming, method.server_streaming) {
        (false, false) => "Unary",
        (false, true) => "ServerStreaming",
        (true, false) => "ClientStreaming",
        (true, true) => "BidiStreaming",
    };
    let mut docs = doc_lines(&method.comments, "    ");
    if docs.is_empty() {
        docs = format!("    /// Calls `{}`.\n", method.proto_name);
    }
    let deprecated = if method.options.deprecated == Some(true) {
        "    #[deprecated]\n"
    } else {
        ""
    };
    let idempotent = if is_idempotent(method) {
        "    #[idempotent]\n"
    } else {
        ""
    };
    // prost's names are already Rust identifiers (`r#type` for `rpc Type`)
    // and its type paths are relative to the package module, where the
    // struct goes.
    format!(
        "{docs}{deprecated}{idempotent}    {name}: {krate}::{kind}<{request}, {response}>,\n",
        name = method.name,
        request = method.input_type,
        response = method.output_type,
    )
}

/// Whether the proto declares the method safe to send twice:
/// `option idempotency_level = IDEMPOTENT` or `NO_SIDE_EFFECTS`.
fn is_idempotent(method: &Method) -> bool {
    use prost_types::method_options::IdempotencyLevel;
    let level = method.options.idempotency_level.unwrap_or_default();
    level == IdempotencyLevel::Idempotent as i32 || level == IdempotencyLevel::NoSideEffects as i32
}

/// Proto comments as `///` lines (prost has escaped their brackets
/// already). Lines are trimmed so that indented text does not become a doc
/// test.
fn doc_lines(comments: &Comments, indent: &str) -> String {
    comments
        .leading
        .iter()
        .flat_map(|block| block.lines())
        .map(|line| {
            let text = line.trim();
            if text.is_empty() {
                format!("{indent}///\n")
            } else {
                format!("{indent}/// {text}\n")
            }
        })
        .collect()
}

fn naive_snake_case(name: &str) -> String {
    let mut snake = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        snake.push(c.to_ascii_lowercase());
        if chars.peek().is_some_and(|next| next.is_uppercase()) {
            snake.push('_');
        }
    }
    snake
}

#[cfg(test)]
mod tests {
    use super::naive_snake_case;

    #[test]
    fn names_modules_as_tonic_build_does() {
        assert_eq!(naive_snake_case("Greeter"), "greeter");
        assert_eq!(naive_snake_case("RouteGuide"), "route_guide");
        assert_eq!(naive_snake_case("HTTPProxy"), "h_t_t_p_proxy");
    }
}
