//! The `#[cached]` attribute of [stratacache](https://docs.rs/stratacache), re-exported
//! as `stratacache::cached` (feature `macros`): an `async fn` read through a cache.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, Expr, GenericArgument, ItemFn, PathArguments, ReturnType, Token, Type};

/// Reads an `async fn` through a stratacache [`Cache`]: the body runs only when the
/// cache has no value for the key (once for all concurrent callers, with stampede
/// protection), and what it returns is cached.
///
/// - `cache = EXPR`: the cache, any expression that derefs to a `Cache<K, V>` (a
///   `static USERS: LazyLock<Cache<u64, User>>`, say); required.
/// - `key = EXPR`: the key, built from the arguments (cloned, so it is owned); required.
/// - `cache_none`: for a function returning `Option<T>`, cache `None` as well (the cache
///   then holds `Option<T>`); without it, `None` is returned and nothing is cached.
///
/// By return type:
/// - `Result<T, E>`: `Ok` values are cached, errors never. A caller whose own body
///   failed gets its error back as it was; a caller that waited on another's failed load,
///   or that met a cache failure (a strict cache), gets `E::from(stratacache::Error)`, so
///   `E` must implement `From<stratacache::Error>`.
/// - `Option<T>`: `Some` is cached; `None` is not (unless `cache_none`).
/// - any other `T`: cached; should the cache fail (a strict cache), the body runs.
///
/// ```
/// use std::sync::LazyLock;
/// use stratacache::{Cache, cached};
///
/// static USERS: LazyLock<Cache<u64, String>> =
///     LazyLock::new(|| Cache::builder().stampede_protection(true).build().unwrap());
///
/// #[cached(cache = USERS, key = id)]
/// async fn user_name(id: u64) -> Option<String> {
///     // SELECT name FROM users WHERE id = $1
///     (id < 100).then(|| format!("user {id}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(user_name(7).await.as_deref(), Some("user 7"));
/// assert!(USERS.contains(&7).await.unwrap(), "cached");
/// assert_eq!(user_name(500).await, None);
/// assert!(!USERS.contains(&500).await.unwrap(), "None is not cached");
/// # }
/// ```
///
/// [`Cache`]: https://docs.rs/stratacache/latest/stratacache/struct.Cache.html
#[proc_macro_attribute]
pub fn cached(attributes: TokenStream, item: TokenStream) -> TokenStream {
    let attributes = syn::parse_macro_input!(attributes as Attributes);
    let function = syn::parse_macro_input!(item as ItemFn);
    expand(attributes, function)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// `cache = EXPR, key = EXPR[, cache_none]`.
struct Attributes {
    cache: Expr,
    key: Expr,
    cache_none: bool,
}

/// One `name = value` or bare `name` of the attribute.
struct Setting {
    name: syn::Ident,
    value: Option<Expr>,
}

impl Parse for Setting {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: syn::Ident = input.parse()?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Self { name, value })
    }
}

impl Parse for Attributes {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let settings = Punctuated::<Setting, Token![,]>::parse_terminated(input)?;
        let (mut cache, mut key, mut cache_none) = (None, None, false);
        for setting in settings {
            match (setting.name.to_string().as_str(), setting.value) {
                ("cache", Some(value)) => cache = Some(value),
                ("key", Some(value)) => key = Some(value),
                ("cache_none", None) => cache_none = true,
                ("cache" | "key", None) => {
                    return Err(Error::new(
                        setting.name.span(),
                        format!("`{}` needs a value: `{} = ...`", setting.name, setting.name),
                    ));
                }
                (_, _) => {
                    return Err(Error::new(
                        setting.name.span(),
                        format!(
                            "unknown setting `{}`: #[cached] takes `cache = ...`, `key = ...` and `cache_none`",
                            setting.name
                        ),
                    ));
                }
            }
        }
        let missing = |what: &str| {
            Error::new(
                Span::call_site(),
                format!("#[cached] needs `{what} = ...`: #[cached(cache = CACHE, key = id)]"),
            )
        };
        Ok(Self {
            cache: cache.ok_or_else(|| missing("cache"))?,
            key: key.ok_or_else(|| missing("key"))?,
            cache_none,
        })
    }
}

/// What the function returns, as far as caching goes.
enum Returns {
    Result,
    Option,
    Value,
}

fn returns(output: &ReturnType) -> syn::Result<Returns> {
    let ReturnType::Type(_, ty) = output else {
        return Err(Error::new(
            output.span(),
            "#[cached] needs a function that returns a value to cache",
        ));
    };
    let Type::Path(path) = &**ty else {
        return Ok(Returns::Value);
    };
    let Some(last) = path.path.segments.last() else {
        return Ok(Returns::Value);
    };
    let generic_count = match &last.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter(|arg| matches!(arg, GenericArgument::Type(_)))
            .count(),
        _ => 0,
    };
    Ok(match (last.ident.to_string().as_str(), generic_count) {
        // `io::Result<T>` and other one-argument aliases are results too.
        ("Result", 1 | 2) => Returns::Result,
        ("Option", 1) => Returns::Option,
        _ => Returns::Value,
    })
}

fn expand(attributes: Attributes, function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            "#[cached] reads an `async fn` through a cache: make the function async",
        ));
    }
    let returns = returns(&sig.output)?;
    let Attributes {
        cache,
        key,
        cache_none,
    } = attributes;
    if cache_none && !matches!(returns, Returns::Option) {
        return Err(Error::new(
            sig.output.span(),
            "`cache_none` is for a function returning `Option<T>`",
        ));
    }
    let helper = match (returns, cache_none) {
        (Returns::Result, _) => quote!(result),
        (Returns::Option, false) => quote!(option),
        (Returns::Option, true) | (Returns::Value, _) => quote!(value),
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            let __stratacache_key = ::std::clone::Clone::clone(&(#key));
            ::stratacache::__private::#helper(&(#cache), __stratacache_key, move || async move #block).await
        }
    })
}
