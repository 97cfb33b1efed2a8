//! The attribute's arguments: `client = path::to::TonicClient`, and
//! `crate = path::to::pooled_client` for crates that re-export this one.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Ident, Path, Token};

/// The parsed arguments.
pub(crate) struct Args {
    /// The tonic-generated client type, without its generic parameter.
    pub(crate) client: Path,
    /// Where the expansion finds the runtime crate: `::pooled_client`
    /// unless `crate = ...` says otherwise (serde's convention).
    pub(crate) krate: Path,
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
        let mut krate: Option<Path> = None;
        while !input.is_empty() {
            // `crate` is a keyword; `parse_any` takes it as a name.
            let key = Ident::parse_any(input)?;
            let slot = if key == "client" {
                &mut client
            } else if key == "crate" {
                &mut krate
            } else {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!(
                        "unknown argument `{key}`: the arguments are `client = path::to::Client` \
                         and, optionally, `crate = path::to::pooled_client`"
                    ),
                ));
            };
            if slot.is_some() {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!("`{key}` is given twice"),
                ));
            }
            input.parse::<Token![=]>()?;
            *slot = Some(if key == "crate" {
                crate_path(input)?
            } else {
                client_path(input)?
            });
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        let client = client.ok_or_else(|| {
            syn::Error::new(Span::call_site(), "missing `client = path::to::Client`")
        })?;
        let krate = krate.unwrap_or_else(|| syn::parse_quote!(::pooled_client));
        Ok(Args { client, krate })
    }
}

/// The tonic client's path, without generic parameters.
fn client_path(input: ParseStream<'_>) -> syn::Result<Path> {
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
    Ok(path)
}

/// The runtime crate's path: `path::to::pooled_client`, or serde's
/// spelling as a string, `"path::to::pooled_client"`.
pub(crate) fn crate_path(input: ParseStream<'_>) -> syn::Result<Path> {
    let path: Path = if input.peek(syn::LitStr) {
        let literal: syn::LitStr = input.parse()?;
        literal.parse().map_err(|_| {
            syn::Error::new_spanned(
                &literal,
                "expected the path of the crate re-exporting pooled_client, \
                 like `crate = my_sdk::pooled_client`",
            )
        })?
    } else {
        input.parse()?
    };
    if let Some(segment) = path.segments.iter().find(|s| !s.arguments.is_empty()) {
        return Err(syn::Error::new_spanned(
            &segment.arguments,
            "a crate path takes no generic parameters",
        ));
    }
    Ok(path)
}
