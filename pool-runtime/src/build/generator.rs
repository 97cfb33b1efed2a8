//! Appends a `#[pooled_client]` struct after tonic's code for each service.
//!
//! The struct is what a user would write by hand; the attribute expands it.
//! Keeping the attribute the only generator of wrapper code means the two
//! paths cannot drift apart.

use proc_macro2::TokenStream;
use prost_build::{Comments, Method, Service, ServiceGenerator};
use quote::{format_ident, quote};

/// tonic's service generator, followed by the pooled client's declaration.
pub(crate) struct PooledGenerator {
    tonic: Box<dyn ServiceGenerator>,
    pooled: bool,
}

impl PooledGenerator {
    pub(crate) fn new(tonic: Box<dyn ServiceGenerator>, pooled: bool) -> Self {
        Self { tonic, pooled }
    }
}

impl ServiceGenerator for PooledGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let declaration = self.pooled.then(|| declare(&service));
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

/// The annotated struct for `service`, formatted.
pub(crate) fn declare(service: &Service) -> String {
    let tokens = declaration(service);
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        // Unreachable for the tokens built below; fall back to plain tokens
        // rather than fail the user's build over formatting.
        Err(_) => tokens.to_string(),
    }
}

fn declaration(service: &Service) -> TokenStream {
    // tonic-build names the client module and type this way.
    let client_module = format_ident!("{}_client", naive_snake_case(&service.name));
    let client_type = format_ident!("{}Client", service.name);
    let pooled_type = format_ident!("Pooled{}Client", service.name);
    let full_name = if service.package.is_empty() {
        service.proto_name.clone()
    } else {
        format!("{}.{}", service.package, service.proto_name)
    };
    let summary =
        format!(" A pooled client for `{full_name}`: share it, clone it, call it from any task.");
    let docs = doc_attributes(&service.comments);
    let separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
    let fields = service.methods.iter().map(field);
    quote! {
        #[doc = #summary]
        #separator
        #(#docs)*
        #[::pooled_client::pooled_client(client = #client_module::#client_type)]
        pub struct #pooled_type {
            #(#fields)*
        }
    }
}

fn field(method: &Method) -> TokenStream {
    let name = syn::parse_str::<syn::Ident>(&method.name)
        .unwrap_or_else(|_| format_ident!("r#{}", method.name));
    let kind = match (method.client_streaming, method.server_streaming) {
        (false, false) => quote!(Unary),
        (false, true) => quote!(ServerStreaming),
        (true, false) => quote!(ClientStreaming),
        (true, true) => quote!(BidiStreaming),
    };
    let request = rust_type(&method.input_type);
    let response = rust_type(&method.output_type);
    let mut docs = doc_attributes(&method.comments);
    if docs.is_empty() {
        let text = format!(" Calls `{}`.", method.proto_name);
        docs.push(quote!(#[doc = #text]));
    }
    let deprecated = (method.options.deprecated == Some(true)).then(|| quote!(#[deprecated]));
    quote! {
        #(#docs)*
        #deprecated
        #name: ::pooled_client::#kind<#request, #response>,
    }
}

/// prost's type paths are relative to the package module, where the
/// struct goes, so they are used as they are.
fn rust_type(path: &str) -> TokenStream {
    syn::parse_str::<syn::Type>(path).map_or_else(|_| quote!(()), |ty| quote!(#ty))
}

/// Proto comments as doc attributes. Lines are trimmed so that indented
/// text does not become a doc test, and brackets are escaped so that they
/// are not read as links.
fn doc_attributes(comments: &Comments) -> Vec<TokenStream> {
    comments
        .leading
        .iter()
        .flat_map(|block| block.lines())
        .map(|line| {
            let text = format!(" {}", line.trim().replace('[', "\\[").replace(']', "\\]"));
            quote!(#[doc = #text])
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
