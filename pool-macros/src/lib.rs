//! The `#[pooled_client]` attribute, re-exported by the `pooled-client`
//! crate; see `pooled_client::pooled_client` for its documentation.
//!
//! The work is split as in serde_derive: `attr` parses the attribute's
//! arguments, `ast` reads the struct into a small model, `valid` checks it,
//! `expand` writes the wrapper, and `fallback` puts a stub of the client in
//! place of the struct when there are errors, so that one mistake does not
//! cascade.

mod ast;
mod attr;
mod expand;
mod fallback;
mod valid;

use proc_macro::TokenStream;

/// Turns an annotated struct into a pooled client; documented in
/// `pooled_client`.
#[proc_macro_attribute]
pub fn pooled_client(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::ItemStruct>(input.clone()) {
        Ok(item) => item,
        Err(error) => return fallback::with_item(input.into(), error).into(),
    };
    let args: proc_macro2::TokenStream = args.into();
    let expanded = attr::parse(args.clone())
        .and_then(|args| ast::Client::from_item(&item, args))
        .and_then(|client| valid::check(&client).map(|()| expand::client(&client)));
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(error) => fallback::with_stub(&item, &args, error).into(),
    }
}
