//! The macros of `mongo-migrations` (feature `macros`), which re-exports them:
//!
//! - `#[mongo_migrations::test]`: an async test that gets a fresh database on
//!   `MONGODB_URI` with the crate's migrations applied, dropped when the test
//!   ends, passed or panicked (the runtime's `testing` module does the work);
//! - `#[derive(MongoSchema)]` (`schema.rs`): a type's `$jsonSchema`, and a
//!   collection's name, indexes and validation level.

mod schema;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, Path, Token};

/// A test with a fresh database on `MONGODB_URI` (or the package's `uri-env`),
/// its migrations applied. The function is `async` and takes one
/// `mongo_migrations::testing::TestDatabase`.
///
/// - `#[mongo_migrations::test]`: every migration applied;
/// - `to = "VERSION"`: up to and including VERSION;
/// - `before = "VERSION"`: every migration older than VERSION, to test that one;
/// - `migrations = false`: none;
/// - `registry = path::to::registry`: the registry function, by default
///   `crate::migrations::registry` in the library's own tests and
///   `<library>::migrations::registry` in `tests/`.
///
/// The database is dropped after the test, also when it panics; set
/// `MONGO_MIGRATIONS_KEEP_TEST_DB=1` to keep it.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Implements `mongo_migrations::schema::MongoSchema` from the fields and
/// serde attributes (`rename`, `rename_all`, `default`, `skip*`,
/// `deny_unknown_fields`, bson's chrono date helpers); anything else serde
/// would write differently is a compile error. `#[mongo(..)]` declares the
/// collection:
///
/// - `collection = "users"`: the collection's name;
/// - `validation_level = "strict" | "moderate"` (default `strict`);
/// - `index(..)`, once per index: `keys = "a: 1, b: -1"` (directions `1`,
///   `-1`, or a kind such as `"2dsphere"`), and any of `unique`, `sparse`,
///   `hidden`, `ttl = SECONDS` (`expireAfterSeconds`), `name = ".."` (default:
///   the server's, `a_1_b_-1`), `partial = "{ \"plan\": { \"$exists\": true } }"`
///   (a `partialFilterExpression`, as extended JSON), `collation = "{ \"locale\":
///   \"fr\", \"strength\": 2 }"`.
///
/// On an error only the error is reported: the type still implements the
/// trait (with a schema that panics), so no second error follows where it is used.
#[proc_macro_derive(MongoSchema, attributes(mongo))]
pub fn derive_mongo_schema(item: TokenStream) -> TokenStream {
    match syn::parse(item) {
        Ok(input) => derive_schema(input).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The derive's expansion; on an error, the error and a stand-in impl.
fn derive_schema(input: syn::DeriveInput) -> Tokens {
    match schema::expand(input.clone()) {
        Ok(tokens) => tokens,
        Err(e) => {
            let error = e.to_compile_error();
            let name = &input.ident;
            let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
            quote! {
                #error
                impl #impl_generics ::mongo_migrations::schema::MongoSchema for #name #ty_generics #where_clause {
                    fn json_schema() -> ::mongo_migrations::bson::Document {
                        ::core::unreachable!("MongoSchema: the derive failed to compile")
                    }
                }
            }
        }
    }
}

/// Which migrations run before the test.
enum Apply {
    All,
    To(String),
    Before(String),
    Nothing,
}

fn expand(args: Tokens, item: Tokens) -> syn::Result<Tokens> {
    let mut function: ItemFn = syn::parse2(item)?;
    let (apply, registry) = options(args)?;
    if function.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            function.sig.fn_token,
            "#[mongo_migrations::test] takes an `async fn` with one argument, the `TestDatabase`",
        ));
    }
    if function.sig.inputs.len() != 1 {
        return Err(syn::Error::new_spanned(
            &function.sig.inputs,
            "#[mongo_migrations::test] takes an `async fn` with one argument: `db: mongo_migrations::testing::TestDatabase`",
        ));
    }
    let name = function.sig.ident.clone();
    let output = match &function.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    let registry = match registry {
        Some(path) => quote!(#path),
        None => default_registry(),
    };
    let apply = match apply {
        Apply::All => quote!(::mongo_migrations::testing::Apply::All),
        Apply::To(v) => quote!(::mongo_migrations::testing::Apply::To(#v)),
        Apply::Before(v) => quote!(::mongo_migrations::testing::Apply::Before(#v)),
        Apply::Nothing => quote!(::mongo_migrations::testing::Apply::Nothing),
    };
    // The test's own function, inside the `#[test]` that runs it.
    let attrs = std::mem::take(&mut function.attrs);
    function.sig.ident = syn::Ident::new("body", Span::call_site());
    let test_name = name.to_string();
    Ok(quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        fn #name() -> #output {
            #function
            ::mongo_migrations::testing::run(
                ::core::concat!(::core::module_path!(), "::", #test_name),
                #registry,
                ::mongo_migrations::settings!(),
                #apply,
                body,
            )
        }
    })
}

fn options(args: Tokens) -> syn::Result<(Apply, Option<Path>)> {
    let mut apply = Apply::All;
    let mut registry = None;
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    for meta in metas {
        let Meta::NameValue(nv) = &meta else {
            return Err(syn::Error::new_spanned(meta, EXPECTED));
        };
        let key = nv.path.get_ident().map(ToString::to_string).unwrap_or_default();
        match (key.as_str(), &nv.value) {
            ("to", Expr::Lit(ExprLit { lit: Lit::Str(s), .. })) => apply = Apply::To(s.value()),
            ("before", Expr::Lit(ExprLit { lit: Lit::Str(s), .. })) => apply = Apply::Before(s.value()),
            ("migrations", Expr::Lit(ExprLit { lit: Lit::Bool(b), .. })) => {
                if !b.value {
                    apply = Apply::Nothing;
                }
            }
            ("registry", Expr::Path(p)) => registry = Some(p.path.clone()),
            _ => return Err(syn::Error::new_spanned(&meta, EXPECTED)),
        }
    }
    Ok((apply, registry))
}

const EXPECTED: &str =
    "expected `to = \"VERSION\"`, `before = \"VERSION\"`, `migrations = false` or `registry = path::to::registry`";

/// `crate::migrations::registry` in the library's unit tests; in an
/// integration test (cargo sets `CARGO_TARGET_TMPDIR` only for those and
/// benches), the library's, by the package's name.
fn default_registry() -> Tokens {
    if std::env::var_os("CARGO_TARGET_TMPDIR").is_some() {
        let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default().replace('-', "_");
        let library = syn::Ident::new(&package, Span::call_site());
        quote!(::#library::migrations::registry)
    } else {
        quote!(crate::migrations::registry)
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[::core::prelude::v1::test]
    fn a_failed_derive_reports_its_error_and_still_implements_the_trait() {
        let item: syn::DeriveInput = syn::parse_str("#[serde(flatten)] struct A { #[serde(flatten)] b: B }").unwrap();
        let out = super::derive_schema(item).to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("MongoSchema for A"), "{out}");
        let good: syn::DeriveInput = syn::parse_str("struct A { b: String }").unwrap();
        assert!(!super::derive_schema(good).to_string().contains("compile_error"));
    }

    fn expanded(args: &str, item: &str) -> String {
        match expand(args.parse().unwrap(), item.parse().unwrap()) {
            Ok(t) => t.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[::core::prelude::v1::test]
    fn options_become_the_apply_argument() {
        let f = "async fn t(db: TestDatabase) {}";
        assert!(expanded("", f).contains("Apply :: All"));
        assert!(expanded("to = \"20260101000000\"", f).contains("Apply :: To (\"20260101000000\")"));
        assert!(expanded("before = \"20260101000000\"", f).contains("Apply :: Before"));
        assert!(expanded("migrations = false", f).contains("Apply :: Nothing"));
        assert!(expanded("registry = app::m::registry", f).contains("app :: m :: registry"));
    }

    #[::core::prelude::v1::test]
    fn a_wrong_function_or_option_is_a_compile_error_that_says_why() {
        assert!(expanded("", "fn t(db: TestDatabase) {}").contains("takes an `async fn`"));
        assert!(expanded("", "async fn t() {}").contains("one argument"));
        assert!(expanded("tos = \"1\"", "async fn t(db: D) {}").contains("expected `to"));
    }
}
