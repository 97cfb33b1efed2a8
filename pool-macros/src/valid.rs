//! Rules the model must follow before it is expanded.

use std::collections::HashMap;

use syn::ext::IdentExt;

use crate::ast::Client;

/// The methods every pooled client has besides its RPCs.
const RESERVED: &[&str] = &[
    "new",
    "connect",
    "pool",
    "with_timeout",
    "send_compressed",
    "accept_compressed",
    "max_decoding_message_size",
    "max_encoding_message_size",
];

/// Checks every rule and reports every broken one at once.
pub(crate) fn check(client: &Client<'_>) -> syn::Result<()> {
    let mut errors: Vec<syn::Error> = Vec::new();
    for attr in client.attrs {
        if attr.path().is_ident("derive") {
            errors.push(syn::Error::new_spanned(
                attr,
                "remove this derive: the pooled client implements Clone and Debug itself",
            ));
        }
    }
    if client.methods.is_empty() {
        errors.push(syn::Error::new_spanned(
            &client.item.fields,
            "declare at least one RPC, like `say_hello: Unary<HelloRequest, HelloReply>`",
        ));
    }
    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    for method in &client.methods {
        let name = method.name.unraw().to_string();
        if seen.insert(name.clone(), method.name).is_some() {
            errors.push(syn::Error::new_spanned(
                method.name,
                format!("duplicate method `{name}`: each RPC is declared once"),
            ));
        }
        if RESERVED.contains(&name.as_str()) {
            errors.push(syn::Error::new_spanned(
                method.name,
                format!("`{name}` is a method every pooled client has; an RPC cannot use its name"),
            ));
        }
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            for error in errors {
                first.combine(error);
            }
            Err(first)
        }
    }
}
