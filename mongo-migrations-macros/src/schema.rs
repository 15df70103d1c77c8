//! `#[derive(MongoSchema)]`: a struct's or unit enum's `$jsonSchema` from its
//! fields and serde attributes, and a collection's name, indexes and
//! validation level from `#[mongo(..)]`. An attribute that would change what
//! serde writes in a way this cannot follow is a compile error.

use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Expr, ExprLit, Fields, Lit, LitStr};

pub fn expand(input: DeriveInput) -> syn::Result<Tokens> {
    let container = Container::read(&input)?;
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let schema = match &input.data {
        Data::Struct(data) => struct_schema(&container, &data.fields)?,
        Data::Enum(data) => enum_schema(&container, data)?,
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "MongoSchema: unions have no BSON form",
            ))
        }
    };
    let collection = match &container.collection {
        Some(c) => quote!(::core::option::Option::Some(#c)),
        None => quote!(::core::option::Option::None),
    };
    let indexes = &container.indexes;
    let level = match container.level.as_deref() {
        Some("moderate") => quote!(::mongo_migrations::schema::ValidationLevel::Moderate),
        _ => quote!(::mongo_migrations::schema::ValidationLevel::Strict),
    };
    Ok(quote! {
        impl #impl_generics ::mongo_migrations::schema::MongoSchema for #name #ty_generics #where_clause {
            fn json_schema() -> ::mongo_migrations::bson::Document {
                #schema
            }
            fn collection() -> ::core::option::Option<&'static str> {
                #collection
            }
            fn indexes() -> ::std::vec::Vec<::mongo_migrations::schema::Index> {
                ::std::vec![#(#indexes),*]
            }
            fn validation_level() -> ::mongo_migrations::schema::ValidationLevel {
                #level
            }
        }
    })
}

/// What the container's `#[serde]` and `#[mongo]` attributes say.
#[derive(Default)]
struct Container {
    rename_all: Option<String>,
    deny_unknown_fields: bool,
    collection: Option<String>,
    level: Option<String>,
    indexes: Vec<Tokens>,
}

/// The serde attributes that change nothing this schema says.
const HARMLESS_CONTAINER: &[&str] = &["crate", "bound", "default", "rename_all_fields", "expecting"];
const HARMLESS_FIELD: &[&str] = &["alias", "borrow", "bound", "skip_deserializing"];

impl Container {
    fn read(input: &DeriveInput) -> syn::Result<Self> {
        let mut c = Container::default();
        for attr in &input.attrs {
            if attr.path().is_ident("serde") {
                attr.parse_nested_meta(|meta| {
                    let key = ident(&meta.path);
                    match key.as_str() {
                        "rename_all" => c.rename_all = Some(string(&meta)?),
                        "deny_unknown_fields" => c.deny_unknown_fields = true,
                        "rename" => {
                            let _ = string(&meta)?;
                        }
                        k if HARMLESS_CONTAINER.contains(&k) => skip_value(&meta)?,
                        other => return Err(meta.error(unsupported(other))),
                    }
                    Ok(())
                })?;
            } else if attr.path().is_ident("mongo") {
                attr.parse_nested_meta(|meta| {
                    match ident(&meta.path).as_str() {
                        "collection" => c.collection = Some(string(&meta)?),
                        "validation_level" => {
                            let level = string(&meta)?;
                            if level != "strict" && level != "moderate" {
                                return Err(meta.error("validation_level is \"strict\" or \"moderate\""));
                            }
                            c.level = Some(level);
                        }
                        "index" => c.indexes.push(index(&meta)?),
                        _ => {
                            return Err(meta
                                .error("expected `collection = \"..\"`, `validation_level = \"..\"` or `index(..)`"))
                        }
                    }
                    Ok(())
                })?;
            }
        }
        Ok(c)
    }
}

/// `index(keys = "email: 1, createdAt: -1", unique, sparse, ttl = 3600, name = "..", hidden)`.
fn index(meta: &syn::meta::ParseNestedMeta) -> syn::Result<Tokens> {
    let mut keys = None;
    let mut options = Vec::new();
    meta.parse_nested_meta(|m| {
        match ident(&m.path).as_str() {
            "keys" => {
                let lit: LitStr = m.value()?.parse()?;
                keys = Some(parse_keys(&lit)?);
            }
            "unique" => options.push(quote!(.unique())),
            "sparse" => options.push(quote!(.sparse())),
            "hidden" => options.push(quote!(.hidden())),
            "ttl" => {
                let secs: syn::LitInt = m.value()?.parse()?;
                options.push(quote!(.ttl(#secs)));
            }
            "name" => {
                let name: LitStr = m.value()?.parse()?;
                options.push(quote!(.named(#name)));
            }
            // A document as JSON text, checked here so a typo fails the build.
            option @ ("partial" | "collation") => {
                let text: LitStr = m.value()?.parse()?;
                if let Err(e) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text.value()) {
                    return Err(syn::Error::new(text.span(), format!("{option}: not a JSON object: {e}")));
                }
                let method = syn::Ident::new(option, text.span());
                options.push(quote!(.#method(
                    ::mongo_migrations::schema::json_document(#text).expect("checked when the type was compiled")
                )));
            }
            _ => {
                return Err(m.error(
                    "index options: keys = \"field: 1, other: -1\", unique, sparse, hidden, ttl = SECS, name = \"..\", partial = \"{JSON}\", collation = \"{JSON}\"",
                ))
            }
        }
        Ok(())
    })?;
    let Some(keys) = keys else {
        return Err(meta.error("an index needs `keys = \"field: 1\"`"));
    };
    Ok(quote!(::mongo_migrations::schema::Index::new(#keys) #(#options)*))
}

/// `"email: 1, createdAt: -1"` into a `doc!`, checked at compile time.
fn parse_keys(lit: &LitStr) -> syn::Result<Tokens> {
    let mut pairs = Vec::new();
    for part in lit.value().split(',') {
        let Some((field, dir)) = part.split_once(':') else {
            return Err(syn::Error::new(
                lit.span(),
                format!("`{}`: expected `field: 1` or `field: -1`", part.trim()),
            ));
        };
        let (field, dir) = (field.trim(), dir.trim());
        let value = match dir {
            "1" => quote!(1i32),
            "-1" => quote!(-1i32),
            "\"2dsphere\"" | "\"hashed\"" => {
                let s = dir.trim_matches('"');
                quote!(#s)
            }
            _ => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`{dir}`: an index direction is 1, -1, \"2dsphere\" or \"hashed\""),
                ))
            }
        };
        if field.is_empty() {
            return Err(syn::Error::new(lit.span(), "an index key needs a field name"));
        }
        pairs.push(quote!(#field: #value));
    }
    Ok(quote!(::mongo_migrations::bson::doc! { #(#pairs),* }))
}

fn struct_schema(container: &Container, fields: &Fields) -> syn::Result<Tokens> {
    let Fields::Named(named) = fields else {
        return Err(syn::Error::new(
            fields.span(),
            "MongoSchema: a document is a struct with named fields",
        ));
    };
    let mut inserts = Vec::new();
    for field in &named.named {
        let Some(f) = Field::read(field, container)? else {
            continue;
        };
        let (name, ty) = (&f.name, &field.ty);
        let schema = match f.bson_date {
            // `chrono_datetime_as_bson_datetime_optional` writes `None` as `null`.
            true => quote! {{
                let date = ::mongo_migrations::bson::doc! { "bsonType": "date" };
                if <#ty as ::mongo_migrations::schema::MongoSchema>::optional() {
                    ::mongo_migrations::schema::nullable(date)
                } else {
                    date
                }
            }},
            false => quote!(<#ty as ::mongo_migrations::schema::MongoSchema>::json_schema()),
        };
        let optional = f.defaulted;
        inserts.push(quote! {
            properties.insert(#name, #schema);
            if !#optional && !<#ty as ::mongo_migrations::schema::MongoSchema>::optional() {
                required.push(::mongo_migrations::bson::Bson::String(#name.into()));
            }
        });
    }
    let deny = container.deny_unknown_fields;
    Ok(quote! {
        let mut properties = ::mongo_migrations::bson::Document::new();
        let mut required: ::std::vec::Vec<::mongo_migrations::bson::Bson> = ::std::vec::Vec::new();
        #(#inserts)*
        let mut schema = ::mongo_migrations::bson::doc! { "bsonType": "object" };
        if !required.is_empty() {
            schema.insert("required", required);
        }
        schema.insert("properties", properties);
        if #deny {
            schema.insert("additionalProperties", false);
        }
        schema
    })
}

fn enum_schema(container: &Container, data: &syn::DataEnum) -> syn::Result<Tokens> {
    let mut names = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            return Err(syn::Error::new(
                variant.span(),
                "MongoSchema: only enums of unit variants map to a BSON `enum` of strings; give this field a struct",
            ));
        }
        let mut name = rename(
            &variant.ident.to_string(),
            container.rename_all.as_deref(),
            Case::Variant,
        )
        .map_err(|e| syn::Error::new(variant.span(), e))?;
        let mut skipped = false;
        for attr in variant.attrs.iter().filter(|a| a.path().is_ident("serde")) {
            attr.parse_nested_meta(|meta| {
                match ident(&meta.path).as_str() {
                    "rename" => name = string(&meta)?,
                    "skip" | "skip_serializing" => skipped = true,
                    "alias" => skip_value(&meta)?,
                    other => return Err(meta.error(unsupported(other))),
                }
                Ok(())
            })?;
        }
        if !skipped {
            names.push(name);
        }
    }
    Ok(quote! {
        ::mongo_migrations::bson::doc! { "bsonType": "string", "enum": [#(#names),*] }
    })
}

/// A field as serde writes it.
struct Field {
    name: String,
    /// `#[serde(default)]` or `skip_serializing_if`: it may be absent.
    defaulted: bool,
    /// `#[serde(with = "bson::serde_helpers::chrono_datetime_as_bson_datetime")]`.
    bson_date: bool,
}

impl Field {
    /// `None` for a field serde never writes.
    fn read(field: &syn::Field, container: &Container) -> syn::Result<Option<Field>> {
        let field_ident = field.ident.as_ref().expect("named");
        let raw = field_ident.to_string();
        let raw = raw.strip_prefix("r#").unwrap_or(&raw);
        let mut f = Field {
            name: rename(raw, container.rename_all.as_deref(), Case::Field)
                .map_err(|e| syn::Error::new(field_ident.span(), e))?,
            defaulted: false,
            bson_date: false,
        };
        let mut skipped = false;
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
            attr.parse_nested_meta(|meta| {
                match ident(&meta.path).as_str() {
                    "rename" => f.name = string(&meta)?,
                    "default" => {
                        f.defaulted = true;
                        skip_value(&meta)?;
                    }
                    "skip_serializing_if" => {
                        f.defaulted = true;
                        skip_value(&meta)?;
                    }
                    "skip" | "skip_serializing" => skipped = true,
                    "with" | "serialize_with" => {
                        let path = string(&meta)?;
                        if DATE_HELPERS.iter().any(|h| path.ends_with(h)) {
                            f.bson_date = true;
                        } else {
                            return Err(meta.error(format!(
                                "MongoSchema cannot tell what `{path}` writes; only bson's date helpers ({}) are known",
                                DATE_HELPERS.join(", ")
                            )));
                        }
                    }
                    "flatten" => {
                        return Err(
                            meta.error("MongoSchema does not follow `flatten` yet: declare the fields in this struct")
                        )
                    }
                    other if HARMLESS_FIELD.contains(&other) => skip_value(&meta)?,
                    other => return Err(meta.error(unsupported(other))),
                }
                Ok(())
            })?;
        }
        Ok((!skipped).then_some(f))
    }
}

/// bson's helpers that write a chrono date as a BSON date.
const DATE_HELPERS: &[&str] = &[
    "chrono_datetime_as_bson_datetime",
    "chrono_datetime_as_bson_datetime_optional",
];

fn unsupported(attr: &str) -> String {
    format!("MongoSchema cannot map #[serde({attr})]: the schema would not match what serde writes")
}

fn ident(path: &syn::Path) -> String {
    path.get_ident().map(ToString::to_string).unwrap_or_default()
}

fn string(meta: &syn::meta::ParseNestedMeta) -> syn::Result<String> {
    let value = meta.value()?;
    match value.parse::<Expr>()? {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Ok(s.value()),
        other => Err(syn::Error::new(other.span(), "expected a string")),
    }
}

/// Consumes `= value` if there is one.
fn skip_value(meta: &syn::meta::ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    }
    Ok(())
}

/// Whether a name is a field's (snake_case in Rust) or a variant's (PascalCase).
#[derive(Clone, Copy)]
enum Case {
    Field,
    Variant,
}

/// `name` after `#[serde(rename_all = rule)]`, as serde renames.
fn rename(name: &str, rule: Option<&str>, case: Case) -> Result<String, String> {
    let Some(rule) = rule else { return Ok(name.to_string()) };
    let words: Vec<String> = match case {
        Case::Field => name
            .split('_')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect(),
        Case::Variant => {
            let mut words = Vec::new();
            let mut word = String::new();
            for c in name.chars() {
                if c.is_uppercase() && !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.extend(c.to_lowercase());
            }
            words.push(word);
            words
        }
    };
    let capitalised = |w: &String| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or_default()
    };
    Ok(match rule {
        "lowercase" => match case {
            Case::Field => name.to_lowercase(),
            Case::Variant => words.concat(),
        },
        "UPPERCASE" => match case {
            Case::Field => name.to_uppercase(),
            Case::Variant => words.concat().to_uppercase(),
        },
        "PascalCase" => words.iter().map(capitalised).collect(),
        "camelCase" => words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { w.clone() } else { capitalised(w) })
            .collect(),
        "snake_case" => words.join("_"),
        "SCREAMING_SNAKE_CASE" => words.join("_").to_uppercase(),
        "kebab-case" => words.join("-"),
        "SCREAMING-KEBAB-CASE" => words.join("-").to_uppercase(),
        other => return Err(format!("unknown rename_all rule `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::{expand, rename, Case};

    fn expanded(item: &str) -> String {
        match expand(syn::parse_str(item).unwrap()) {
            Ok(t) => t.to_string(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[::core::prelude::v1::test]
    fn names_follow_serde_s_rename_rules() {
        let f = |n, r| rename(n, Some(r), Case::Field).unwrap();
        assert_eq!(f("display_name", "camelCase"), "displayName");
        assert_eq!(f("display_name", "PascalCase"), "DisplayName");
        assert_eq!(f("display_name", "SCREAMING_SNAKE_CASE"), "DISPLAY_NAME");
        assert_eq!(f("display_name", "kebab-case"), "display-name");
        let v = |n, r| rename(n, Some(r), Case::Variant).unwrap();
        assert_eq!(v("SuperAdmin", "snake_case"), "super_admin");
        assert_eq!(v("SuperAdmin", "camelCase"), "superAdmin");
        assert_eq!(v("SuperAdmin", "lowercase"), "superadmin");
        assert_eq!(v("SuperAdmin", "SCREAMING-KEBAB-CASE"), "SUPER-ADMIN");
        assert!(rename("a", Some("Title Case"), Case::Field).is_err());
    }

    #[::core::prelude::v1::test]
    fn what_cannot_be_mapped_is_a_compile_error_that_says_so() {
        let e = expanded("#[serde(tag = \"t\")] enum E { A }");
        assert!(e.contains("cannot map #[serde(tag)]"), "{e}");
        let e = expanded("struct S { #[serde(flatten)] inner: Inner }");
        assert!(e.contains("does not follow `flatten`"), "{e}");
        let e = expanded("struct S { #[serde(with = \"my::helper\")] at: X }");
        assert!(e.contains("cannot tell what `my::helper` writes"), "{e}");
        let e = expanded("enum E { A(u8) }");
        assert!(e.contains("only enums of unit variants"), "{e}");
        let e = expanded("#[mongo(index(keys = \"a: 2\"))] struct S { a: u8 }");
        assert!(e.contains("an index direction is 1, -1"), "{e}");
        let e = expanded("struct S(u8);");
        assert!(e.contains("named fields"), "{e}");
    }

    #[::core::prelude::v1::test]
    fn an_optional_date_helper_admits_the_null_it_writes_for_none() {
        let e = expanded(
            "struct S { #[serde(with = \"bson::serde_helpers::chrono_datetime_as_bson_datetime_optional\")] at: Option<DateTime<Utc>> }",
        );
        assert!(e.contains("schema :: nullable (date)"), "{e}");
    }

    #[::core::prelude::v1::test]
    fn container_attributes_become_the_collection_s_declaration() {
        let e = expanded(
            "#[mongo(collection = \"users\", validation_level = \"moderate\", index(keys = \"email: 1\", unique))] struct U { email: String }",
        );
        assert!(e.contains("Some (\"users\")"), "{e}");
        assert!(e.contains("ValidationLevel :: Moderate"), "{e}");
        assert!(e.contains(". unique ()"), "{e}");
    }
}
