//! The attribute's arguments: `client = path::to::TonicClient`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Ident, Path, Token};

/// The parsed arguments.
pub(crate) struct Args {
    /// The tonic-generated client type, without its generic parameter.
    pub(crate) client: Path,
}

pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Args> {
    if tokens.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "missing `client = ...`: name the tonic client to pool, \
             like `#[pooled_client(client = greeter_client::GreeterClient)]`",
        ));
    }
    Parser::parse2(Args::parse, tokens)
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut client: Option<Path> = None;
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            if key != "client" {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!(
                        "unknown argument `{key}`: the only argument is `client = path::to::Client`"
                    ),
                ));
            }
            if client.is_some() {
                return Err(syn::Error::new_spanned(&key, "`client` is given twice"));
            }
            input.parse::<Token![=]>()?;
            if input.peek(syn::Lit) {
                let literal: syn::Lit = input.parse()?;
                return Err(syn::Error::new_spanned(
                    literal,
                    "expected a path to the tonic client type, not a literal: \
                     write `client = greeter_client::GreeterClient`",
                ));
            }
            let path: Path = input.parse()?;
            if let Some(segment) = path.segments.iter().find(|s| !s.arguments.is_empty()) {
                return Err(syn::Error::new_spanned(
                    &segment.arguments,
                    "write the client type without its generic parameter: \
                     the pooled client fills it with `pooled_client::Pool`",
                ));
            }
            client = Some(path);
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        let client = client.ok_or_else(|| {
            syn::Error::new(Span::call_site(), "missing `client = path::to::Client`")
        })?;
        Ok(Args { client })
    }
}
