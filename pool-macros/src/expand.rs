//! Writes the pooled client for a checked model.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Client, Method, RpcKind};

pub(crate) fn client(client: &Client<'_>) -> TokenStream {
    let Client {
        attrs,
        vis,
        ident,
        client: tonic_client,
        krate,
        methods,
        ..
    } = client;
    // Every path into the runtime goes through its support module.
    let private = quote!(#krate::__private);
    let name = ident.to_string();
    let declared_types = methods.iter().map(|m| &m.field.ty);
    let constructors = constructors(tonic_client, &private);
    let settings = settings(&private);
    let methods = methods.iter().map(|m| method(m, &private));
    quote! {
        // The declared field types, used here so that the user's imports of
        // `Unary` and friends (and of the message types) count as used.
        const _: ::core::marker::PhantomData<(#(#declared_types,)*)> = ::core::marker::PhantomData;

        #(#attrs)*
        #[derive(Clone)]
        #vis struct #ident {
            inner: #tonic_client<#private::Pool>,
            pool: #private::Pool,
            timeout: ::core::option::Option<::core::time::Duration>,
            decoding_limit: ::core::option::Option<usize>,
            interceptor: ::core::option::Option<#private::SharedInterceptor>,
        }

        impl ::core::fmt::Debug for #ident {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#name)
                    .field("pool", &self.pool)
                    .field("timeout", &self.timeout)
                    .field("interceptor", &self.interceptor.is_some())
                    .finish_non_exhaustive()
            }
        }

        #[allow(dead_code)]
        impl #ident {
            #constructors
            #settings
            #(#methods)*
        }
    }
}

/// `new`, `connect` and `pool`.
fn constructors(tonic_client: &syn::Path, private: &TokenStream) -> TokenStream {
    quote! {
        /// A client whose calls go through `pool`; cheap, like cloning the pool.
        pub fn new(pool: #private::Pool) -> Self {
            // tonic's decoder holds what the pool holds: the pool's limit.
            let decoding_limit = pool.config().max_decoding_message_size;
            Self {
                inner: #tonic_client::new(::core::clone::Clone::clone(&pool))
                    .max_decoding_message_size(decoding_limit),
                pool,
                timeout: ::core::option::Option::None,
                decoding_limit: ::core::option::Option::None,
                interceptor: ::core::option::Option::None,
            }
        }

        /// Builds a pool with default settings for `uri` and waits until
        /// its first connection is up.
        ///
        /// # Errors
        ///
        /// When `uri` is not a valid endpoint or the server cannot be reached.
        pub async fn connect(
            uri: impl ::core::convert::Into<::std::string::String>,
        ) -> ::core::result::Result<Self, #private::Error> {
            #private::connect(uri.into()).await.map(Self::new)
        }

        /// The pool this client sends through.
        pub fn pool(&self) -> &#private::Pool {
            &self.pool
        }
    }
}

/// tonic's per-client settings, and the default deadline.
fn settings(private: &TokenStream) -> TokenStream {
    quote! {
            /// Compresses requests with `encoding`.
            pub fn send_compressed(mut self, encoding: #private::tonic::codec::CompressionEncoding) -> Self {
                self.inner = self.inner.send_compressed(encoding);
                self
            }

            /// Accepts responses compressed with `encoding`.
            pub fn accept_compressed(mut self, encoding: #private::tonic::codec::CompressionEncoding) -> Self {
                self.inner = self.inner.accept_compressed(encoding);
                self
            }

            /// The largest response message accepted, in bytes; a larger one
            /// fails the call with `RESOURCE_EXHAUSTED`. Default: the pool's
            /// `max_decoding_message_size` (tonic's 4 MiB unless set).
            pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
                self.inner = self.inner.max_decoding_message_size(limit);
                self.decoding_limit = ::core::option::Option::Some(limit);
                self
            }

            /// The largest request message sent, in bytes. Default: tonic's, unlimited.
            pub fn max_encoding_message_size(mut self, limit: usize) -> Self {
                self.inner = self.inner.max_encoding_message_size(limit);
                self
            }

            /// A deadline for every call whose request sets none. Default: none.
            pub fn with_timeout(mut self, timeout: ::core::time::Duration) -> Self {
                self.timeout = ::core::option::Option::Some(timeout);
                self
            }

            /// Runs `interceptor` (tonic's `Interceptor`, such as a closure
            /// taking and returning a `tonic::Request<()>`) on every call of
            /// this client and its clones, before the pool's; an error ends the
            /// call with that status. A second call replaces the first.
            /// Calls on many threads run it at once (each a clone of it, as
            /// each clone of a tonic client holds one). Default: none.
            pub fn with_interceptor(
                mut self,
                interceptor: impl #private::tonic::service::Interceptor
                    + ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
            ) -> Self {
                self.interceptor = ::core::option::Option::Some(
                    #private::SharedInterceptor::new(interceptor),
                );
                self
            }
    }
}

/// An RPC method's request parameter, its conversion to a request, and
/// its output, as tonic's generated client has them.
pub(crate) struct Signature {
    pub(crate) parameter: TokenStream,
    pub(crate) into_request: TokenStream,
    pub(crate) output: TokenStream,
}

pub(crate) fn signature(
    kind: RpcKind,
    request: &syn::Type,
    response: &syn::Type,
    private: &TokenStream,
) -> Signature {
    let (parameter, into_request) = if kind.streams_requests() {
        (
            quote!(impl #private::tonic::IntoStreamingRequest<Message = #request>),
            quote!(#private::tonic::IntoStreamingRequest::into_streaming_request(request)),
        )
    } else {
        (
            quote!(impl #private::tonic::IntoRequest<#request>),
            quote!(#private::tonic::IntoRequest::into_request(request)),
        )
    };
    let output = if kind.streams_responses() {
        quote!(#private::tonic::Response<#private::tonic::Streaming<#response>>)
    } else {
        quote!(#private::tonic::Response<#response>)
    };
    Signature {
        parameter,
        into_request,
        output,
    }
}

fn method(method: &Method<'_>, private: &TokenStream) -> TokenStream {
    let Method {
        field,
        name,
        kind,
        request,
        response,
        attrs,
        idempotent,
    } = method;
    let Signature {
        parameter,
        into_request,
        output,
    } = signature(*kind, request, response, private);
    let unary = !kind.streams_requests() && !kind.streams_responses();
    let mark_idempotent = idempotent
        .then(|| quote!(let request = #private::mark_idempotent(&self.pool, request, #unary);));
    quote_spanned! {field.span()=>
        #(#attrs)*
        pub async fn #name(
            &self,
            request: #parameter,
        ) -> ::core::result::Result<#output, #private::tonic::Status> {
            // The request is passed on by value, never borrowed here: a
            // borrowed one would stay in this future beside tonic's (S11).
            let request = #private::prepare(
                #into_request,
                ::core::option::Option::as_ref(&self.interceptor),
                self.timeout,
                self.decoding_limit,
            )?;
            #mark_idempotent
            let mut client = ::core::clone::Clone::clone(&self.inner);
            // A deprecated RPC warns where the user calls it, not here.
            #[allow(deprecated)]
            let response = client.#name(request).await;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use crate::{ast, attr, valid};

    /// Expands `item` with `args` as the attribute would.
    fn expand(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
        let item: syn::ItemStruct = syn::parse2(item).unwrap();
        let client = ast::Client::from_item(&item, attr::parse(args).unwrap()).unwrap();
        valid::check(&client).unwrap();
        let file: syn::File = syn::parse2(super::client(&client)).unwrap();
        prettyplease::unparse(&file)
    }

    #[test]
    fn expands_one_method_per_field_with_tonics_signatures() {
        let expanded = expand(
            quote!(client = greeter_client::GreeterClient),
            quote! {
                /// Greets.
                pub struct PooledGreeterClient {
                    /// Says hello.
                    say_hello: Unary<HelloRequest, HelloReply>,
                    /// Says hello again, safely.
                    #[idempotent]
                    say_hello_again: Unary<HelloRequest, HelloReply>,
                    #[deprecated]
                    chat: BidiStreaming<HelloRequest, HelloReply>,
                }
            },
        );
        println!("{expanded}");
        // Compared without whitespace, so line breaks chosen by the
        // formatter do not matter.
        let squeezed: String = expanded.split_whitespace().collect();
        for expected in [
            "pub struct PooledGreeterClient {",
            "inner: greeter_client::GreeterClient<::pooled_client::__private::Pool>,",
            "/// Says hello. pub async fn say_hello(&self, request: impl ::pooled_client::__private::tonic::IntoRequest<HelloRequest>,",
            ") -> ::core::result::Result<::pooled_client::__private::tonic::Response<HelloReply>,",
            "#[deprecated] pub async fn chat(",
            "impl ::pooled_client::__private::tonic::IntoStreamingRequest<Message = HelloRequest,>",
            "::pooled_client::__private::tonic::Streaming<HelloReply>",
            "pub fn new(pool: ::pooled_client::__private::Pool) -> Self",
            "let request = ::pooled_client::__private::mark_idempotent(&self.pool, request, true,);",
        ] {
            let squeezed_expected: String = expected.split_whitespace().collect();
            assert!(
                squeezed.contains(&squeezed_expected),
                "missing {expected:?} in:\n{expanded}"
            );
        }
        // Only the method declared idempotent is marked, and the attribute
        // itself is consumed.
        assert_eq!(expanded.matches("mark_idempotent").count(), 1, "{expanded}");
        assert!(!expanded.contains("#[idempotent]"), "{expanded}");
    }

    #[test]
    fn a_crate_path_replaces_every_path_into_the_runtime() {
        let item = quote! {
            pub struct PooledGreeterClient {
                #[idempotent]
                say_hello: Unary<HelloRequest, HelloReply>,
            }
        };
        for args in [
            quote!(
                client = greeter_client::GreeterClient,
                crate = my_sdk::pooled_client
            ),
            quote!(
                crate = "my_sdk::pooled_client",
                client = greeter_client::GreeterClient
            ),
        ] {
            let expanded = expand(args, item.clone());
            let squeezed: String = expanded.split_whitespace().collect();
            assert!(
                squeezed.contains(
                    "inner:greeter_client::GreeterClient<my_sdk::pooled_client::__private::Pool>"
                ),
                "{expanded}"
            );
            assert!(
                squeezed.contains("my_sdk::pooled_client::__private::mark_idempotent("),
                "{expanded}"
            );
            assert_eq!(
                squeezed.matches("::pooled_client::").count(),
                squeezed.matches("my_sdk::pooled_client::").count(),
                "{expanded}"
            );
        }
    }

    #[test]
    fn bad_crate_arguments_are_spanned_errors() {
        for (args, message) in [
            (
                quote!(client = a::B, crate = "not a path"),
                "expected the path of the crate",
            ),
            (
                quote!(client = a::B, crate = x, crate = y),
                "`crate` is given twice",
            ),
            (
                quote!(client = a::B, crate = x::<u8>),
                "takes no generic parameters",
            ),
        ] {
            let error = attr::parse(args).err().expect("an error");
            assert!(error.to_string().contains(message), "{error}");
        }
    }
}
