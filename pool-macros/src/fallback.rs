//! On errors: the user's item unchanged, beside the errors, so that one
//! mistake does not turn into many.

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn with_errors(item: TokenStream, error: syn::Error) -> TokenStream {
    let errors = error.to_compile_error();
    quote! {
        #errors
        #item
    }
}
