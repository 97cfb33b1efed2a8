//! The annotated struct as a small model that keeps each original node,
//! so that errors point at the user's tokens.

use syn::{
    Attribute, Field, GenericArgument, Ident, ItemStruct, Path, PathArguments, Type, Visibility,
};

use crate::attr::Args;

/// The kinds of RPC, named as the field types that declare them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcKind {
    Unary,
    ServerStreaming,
    ClientStreaming,
    BidiStreaming,
}

impl RpcKind {
    fn from_name(name: &Ident) -> Option<Self> {
        Some(match name.to_string().as_str() {
            "Unary" => Self::Unary,
            "ServerStreaming" => Self::ServerStreaming,
            "ClientStreaming" => Self::ClientStreaming,
            "BidiStreaming" => Self::BidiStreaming,
            _ => return None,
        })
    }

    pub(crate) fn streams_requests(self) -> bool {
        matches!(self, Self::ClientStreaming | Self::BidiStreaming)
    }

    pub(crate) fn streams_responses(self) -> bool {
        matches!(self, Self::ServerStreaming | Self::BidiStreaming)
    }
}

/// The whole client.
pub(crate) struct Client<'a> {
    pub(crate) item: &'a ItemStruct,
    /// Attributes of the struct, doc comments included.
    pub(crate) attrs: &'a [Attribute],
    pub(crate) vis: &'a Visibility,
    pub(crate) ident: &'a Ident,
    pub(crate) client: Path,
    /// The runtime crate's path (`crate = ...`, or `::pooled_client`).
    pub(crate) krate: Path,
    pub(crate) methods: Vec<Method<'a>>,
}

/// One RPC, declared by one field.
pub(crate) struct Method<'a> {
    pub(crate) field: &'a Field,
    pub(crate) name: &'a Ident,
    pub(crate) kind: RpcKind,
    pub(crate) request: &'a Type,
    pub(crate) response: &'a Type,
    /// `doc` and `deprecated` attributes, carried to the method.
    pub(crate) attrs: Vec<&'a Attribute>,
    /// `#[idempotent]`: the method is safe to send twice (the proto's
    /// `idempotency_level`), so the pool's policy for such methods applies.
    pub(crate) idempotent: bool,
}

const FIELD_TYPES: &str = "expected `Unary<Request, Response>`, `ServerStreaming<Request, Response>`, \
     `ClientStreaming<Request, Response>` or `BidiStreaming<Request, Response>`";

impl<'a> Client<'a> {
    pub(crate) fn from_item(item: &'a ItemStruct, args: Args) -> syn::Result<Self> {
        let fields = match &item.fields {
            syn::Fields::Named(fields) => fields,
            syn::Fields::Unnamed(fields) => {
                return Err(syn::Error::new_spanned(
                    fields,
                    "#[pooled_client] needs named fields, one per RPC, \
                     like `{ say_hello: Unary<HelloRequest, HelloReply> }`",
                ));
            }
            syn::Fields::Unit => {
                return Err(syn::Error::new_spanned(
                    item,
                    "#[pooled_client] needs a struct with named fields, one per RPC, \
                     like `struct PooledGreeterClient { say_hello: Unary<HelloRequest, HelloReply> }`",
                ));
            }
        };
        let mut errors: Option<syn::Error> = None;
        let generics = &item.generics;
        if !generics.params.is_empty() || generics.where_clause.is_some() {
            errors = Some(syn::Error::new_spanned(
                generics,
                "a pooled client cannot be generic: it always runs over `pooled_client::Pool`",
            ));
        }
        let mut methods = Vec::new();
        for field in &fields.named {
            match Method::from_field(field) {
                Ok(method) => methods.push(method),
                Err(error) => match errors.as_mut() {
                    Some(errors) => errors.combine(error),
                    None => errors = Some(error),
                },
            }
        }
        if let Some(errors) = errors {
            return Err(errors);
        }
        Ok(Self {
            item,
            attrs: &item.attrs,
            vis: &item.vis,
            ident: &item.ident,
            client: args.client,
            krate: args.krate,
            methods,
        })
    }
}

impl<'a> Method<'a> {
    fn from_field(field: &'a Field) -> syn::Result<Self> {
        let name = field
            .ident
            .as_ref()
            .ok_or_else(|| syn::Error::new_spanned(field, "expected a named field"))?;
        let (kind, request, response) = rpc_type(&field.ty)?;
        let mut attrs = Vec::new();
        let mut idempotent = false;
        for attr in &field.attrs {
            if attr.path().is_ident("doc") || attr.path().is_ident("deprecated") {
                attrs.push(attr);
            } else if attr.path().is_ident("idempotent") {
                attr.meta.require_path_only()?;
                if idempotent {
                    return Err(syn::Error::new_spanned(
                        attr,
                        "#[idempotent] is given twice",
                    ));
                }
                idempotent = true;
            } else {
                return Err(syn::Error::new_spanned(
                    attr,
                    "only doc comments, #[deprecated] and #[idempotent] are allowed on an RPC field",
                ));
            }
        }
        Ok(Self {
            field,
            name,
            kind,
            request,
            response,
            attrs,
            idempotent,
        })
    }
}

/// Whether `name` is one of the four RPC field types.
pub(crate) fn is_rpc_kind(name: &Ident) -> bool {
    RpcKind::from_name(name).is_some()
}

/// Reads `Kind<Request, Response>`, whatever path leads to `Kind`.
pub(crate) fn rpc_type(ty: &Type) -> syn::Result<(RpcKind, &Type, &Type)> {
    let unknown = || syn::Error::new_spanned(ty, format!("unknown RPC field type: {FIELD_TYPES}"));
    let Type::Path(path) = ty else {
        return Err(unknown());
    };
    if path.qself.is_some() {
        return Err(unknown());
    }
    let segment = path.path.segments.last().ok_or_else(unknown)?;
    let kind = RpcKind::from_name(&segment.ident).ok_or_else(unknown)?;
    let PathArguments::AngleBracketed(arguments) = &segment.arguments else {
        return Err(syn::Error::new_spanned(
            segment,
            format!(
                "`{}` needs the request and response types: {FIELD_TYPES}",
                segment.ident
            ),
        ));
    };
    let types: Vec<&Type> = arguments
        .args
        .iter()
        .filter_map(|argument| match argument {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [request, response] if arguments.args.len() == 2 => Ok((kind, request, response)),
        _ => Err(syn::Error::new_spanned(
            arguments,
            format!(
                "`{}` takes exactly two types, the request and the response: {FIELD_TYPES}",
                segment.ident
            ),
        )),
    }
}
