//! On errors: the errors, and a stub of the client in place of the user's
//! struct, so that one mistake does not turn into many (thiserror's
//! fallback does the same for its impls).
//!
//! The stub has the struct's name, visibility and doc comments, the
//! methods every pooled client has, and one method per RPC field with the
//! signature the real client would give it (a generic one where the
//! field's type is the mistake). Code that uses the client therefore
//! compiles as far as it can, and the user sees the one real error. The
//! stub also names the paths the attribute was given and the field types
//! that were understood, so that their imports do not read as unused.
//! Nothing of it ever runs: the errors stop the build.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;

use crate::{ast, attr, expand};

/// The user's input when it is not a struct at all: kept as it is.
pub(crate) fn with_item(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote! {
        #errors
        #item
    }
}

/// The errors and a stub of the client that `item` and `args` describe.
pub(crate) fn with_stub(
    item: &syn::ItemStruct,
    args: &TokenStream,
    error: syn::Error,
) -> TokenStream {
    let errors = error.to_compile_error();
    let krate = crate_path(args);
    let private = quote!(#krate::__private);
    let named = named(item, args);
    let client = stub_client(item, &private);
    quote! {
        #errors
        #named
        #client
    }
}

/// Uses of the paths and types the user wrote that resolve, so that their
/// imports do not read as unused.
fn named(item: &syn::ItemStruct, args: &TokenStream) -> TokenStream {
    let mut paths = argument_paths(args);
    let mut types: Vec<&syn::Type> = Vec::new();
    for field in &item.fields {
        named_parts(&field.ty, &mut paths, &mut types);
    }
    quote! {
        const _: () = {
            #( #[allow(unused_imports)] use #paths as _; )*
        };
        const _: ::core::marker::PhantomData<(#(#types,)*)> = ::core::marker::PhantomData;
    }
}

/// The struct, with its doc comments, and every method a pooled client
/// has: its own and one per RPC field (each name once).
fn stub_client(item: &syn::ItemStruct, private: &TokenStream) -> TokenStream {
    let syn::ItemStruct {
        attrs, vis, ident, ..
    } = item;
    let kept = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc") || a.path().is_ident("deprecated"));
    let mut seen = std::collections::HashSet::new();
    let methods = item
        .fields
        .iter()
        .filter(|f| {
            f.ident
                .as_ref()
                .is_some_and(|i| seen.insert(i.unraw().to_string()))
        })
        .map(|f| stub_method(f, private));
    quote! {
        #(#kept)*
        #[derive(Clone, Debug)]
        #vis struct #ident {
            pool: #private::Pool,
        }

        #[allow(dead_code, unused_variables, clippy::all)]
        impl #ident {
            pub fn new(pool: #private::Pool) -> Self { Self { pool } }
            pub async fn connect(
                uri: impl ::core::convert::Into<::std::string::String>,
            ) -> ::core::result::Result<Self, #private::Error> { ::core::unreachable!() }
            pub fn pool(&self) -> &#private::Pool { &self.pool }
            pub fn send_compressed(self, encoding: #private::tonic::codec::CompressionEncoding) -> Self { self }
            pub fn accept_compressed(self, encoding: #private::tonic::codec::CompressionEncoding) -> Self { self }
            pub fn max_decoding_message_size(self, limit: usize) -> Self { self }
            pub fn max_encoding_message_size(self, limit: usize) -> Self { self }
            pub fn with_timeout(self, timeout: ::core::time::Duration) -> Self { self }
            pub fn with_interceptor(
                self,
                interceptor: impl #private::tonic::service::Interceptor
                    + ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
            ) -> Self { self }
            #(#methods)*
        }
    }
}

/// One RPC's method with the signature the real client gives it
/// (`expand::signature`); a generic one when the field's type is the
/// mistake.
fn stub_method(field: &syn::Field, private: &TokenStream) -> TokenStream {
    let name = &field.ident;
    let Ok((kind, request, response)) = ast::rpc_type(&field.ty) else {
        return quote! {
            pub async fn #name<Request, Response>(
                &self,
                request: Request,
            ) -> ::core::result::Result<#private::tonic::Response<Response>, #private::tonic::Status> {
                ::core::unreachable!()
            }
        };
    };
    let expand::Signature {
        parameter, output, ..
    } = expand::signature(kind, request, response, private);
    quote! {
        pub async fn #name(
            &self,
            request: #parameter,
        ) -> ::core::result::Result<#output, #private::tonic::Status> {
            ::core::unreachable!()
        }
    }
}

/// What a field's type names that resolves: the whole type when it is
/// understood; when only its arity is wrong (`Unary<HelloRequest>`), the
/// kind's path and the types it was given. A type that is itself the
/// mistake names nothing, so as not to add an error of its own.
fn named_parts<'a>(ty: &'a syn::Type, paths: &mut Vec<syn::Path>, types: &mut Vec<&'a syn::Type>) {
    if ast::rpc_type(ty).is_ok() {
        types.push(ty);
        return;
    }
    let syn::Type::Path(path) = ty else {
        return;
    };
    let Some(last) = path.path.segments.last() else {
        return;
    };
    if path.qself.is_some() || !ast::is_rpc_kind(&last.ident) {
        return;
    }
    let mut kind = path.path.clone();
    if let Some(segment) = kind.segments.last_mut() {
        segment.arguments = syn::PathArguments::None;
    }
    paths.push(kind);
    if let syn::PathArguments::AngleBracketed(arguments) = &last.arguments {
        types.extend(arguments.args.iter().filter_map(|a| match a {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        }));
    }
}

/// `key = value` pairs of the attribute, as far as they parse.
fn pairs(args: &TokenStream) -> Vec<syn::MetaNameValue> {
    Punctuated::<syn::MetaNameValue, syn::Token![,]>::parse_terminated
        .parse2(args.clone())
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

/// The runtime crate's path as `crate = ...` gives it (read by `attr`'s
/// own parser), else `::pooled_client`.
fn crate_path(args: &TokenStream) -> syn::Path {
    pairs(args)
        .into_iter()
        .find(|pair| pair.path.is_ident("crate"))
        .and_then(|pair| {
            let value = pair.value;
            syn::parse::Parser::parse2(attr::crate_path, quote!(#value)).ok()
        })
        .unwrap_or_else(|| syn::parse_quote!(::pooled_client))
}

/// The paths given as values (`client = path`, misspelled keys too).
fn argument_paths(args: &TokenStream) -> Vec<syn::Path> {
    pairs(args)
        .into_iter()
        .filter(|pair| !pair.path.is_ident("crate"))
        .filter_map(|pair| match pair.value {
            syn::Expr::Path(path) if path.qself.is_none() => Some(path.path),
            _ => None,
        })
        .filter(|path| path.segments.iter().all(|s| s.arguments.is_empty()))
        .collect()
}
