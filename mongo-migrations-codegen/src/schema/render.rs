//! The migration modules `diff` writes, rendered with `quote` and
//! `prettyplease`: readable calls of the runtime's safe operations, with
//! each validator frozen as JSON in the module (the type may change later;
//! an applied migration must not). Pure: no I/O.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, ToTokens as _};
use serde_json::Value;

use crate::schema::diff::Op;
use crate::schema::snapshot::IndexSpec;

/// Which half of a schema change a module holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// Before the new code is deployed.
    PreDeploy,
    /// After it is.
    PostDeploy,
}

/// The source of one generated migration module holding `ops`; `command`
/// is how it was generated (`diff add-email`).
pub fn render_module(ops: &[Op], half: Half, command: &str) -> String {
    let mut consts = Consts::default();
    let mut up = Body::default();
    let mut down = Body::default();
    for op in ops {
        let (u, d) = statements(op, &mut consts, &mut up, &mut down);
        up.statements.push(u);
        down.statements.push(d);
    }
    down.statements.reverse();
    let when = match half {
        Half::PreDeploy => "before the deploy",
        Half::PostDeploy => "after the deploy",
    };
    let mut doc = vec![
        format!(" Schema changes of `cargo mongo-migrate {command}`, {when}:"),
        String::new(),
    ];
    doc.extend(ops.iter().map(|op| format!(" - {}", op.describe())));
    let doc = doc.iter().map(|line| quote! { #![doc = #line] });
    let uses = uses(ops);
    let mut imports = vec![quote! { use mongo_migrations::prelude::*; }];
    let mut names = Vec::new();
    if !consts.items.is_empty() || uses.json {
        names.push(quote! { self });
    }
    if uses.index {
        names.push(quote! { Index });
    }
    if uses.level {
        names.push(quote! { ValidationLevel });
    }
    if !names.is_empty() {
        imports.push(quote! { use mongo_migrations::schema::{#(#names),*}; });
    }
    let phase = match half {
        Half::PreDeploy => quote! {},
        Half::PostDeploy => quote! {
            /// After the deploy: the code that needs these changes runs everywhere.
            pub const PHASE: Phase = Phase::PostDeploy;
        },
    };
    let repeatable = quote! {
        /// Every operation here is safe to repeat: a run cut off (a killed
        /// runner) or refused (documents that violate the validator) runs again
        /// with the next `up`, without `resolve`.
        pub const REPEATABLE: bool = true;
    };
    let decls = consts.items;
    let (up, down) = (up.tokens(), down.tokens());
    let file = quote! {
        #(#doc)*
        #(#imports)*
        #phase
        #repeatable
        #(#decls)*
        /// Generated from the declared collections; edit it as any migration until it is applied.
        pub async fn up(ctx: &mut MigrationContext) -> MigrationResult {
            #up
            Ok(())
        }
        /// Undoes `up`; a collection it created is kept, with its documents.
        pub async fn down(ctx: &mut MigrationContext) -> MigrationResult {
            #down
            Ok(())
        }
    };
    let file: syn::File = syn::parse2(file).expect("the generated migration parses");
    prettyplease::unparse(&file)
}

/// The statements of `up` or `down`, after the validators they read.
#[derive(Default)]
struct Body {
    /// `(local, const)`: `let local = schema::json_document(CONST)?;`.
    locals: Vec<(syn::Ident, syn::Ident)>,
    statements: Vec<TokenStream>,
}

impl Body {
    /// The local holding the document of `constant`.
    fn local(&mut self, constant: &syn::Ident) -> syn::Ident {
        let local = format_ident!("{}", constant.to_string().to_lowercase());
        if !self.locals.iter().any(|(l, _)| *l == local) {
            self.locals.push((local.clone(), constant.clone()));
        }
        local
    }

    fn tokens(&self) -> TokenStream {
        let locals = self
            .locals
            .iter()
            .map(|(local, constant)| quote! { let #local = schema::json_document(#constant)?; });
        let statements = &self.statements;
        quote! { #(#locals)* #(#statements)* }
    }
}

/// What the statements use, for the imports.
struct Uses {
    json: bool,
    index: bool,
    level: bool,
}

fn uses(ops: &[Op]) -> Uses {
    let mut uses = Uses {
        json: false,
        index: false,
        level: false,
    };
    for op in ops {
        match op {
            Op::StageValidator { .. } | Op::EnforceValidator { .. } | Op::RemoveValidator { .. } => uses.level = true,
            Op::BuildIndex { index, .. } | Op::DropHiddenIndex { index, .. } => {
                uses.index = true;
                uses.json |= index_uses_json(index);
            }
            Op::ReplaceIndex { old, new, .. } => {
                uses.index = true;
                uses.json |= index_uses_json(old) || index_uses_json(new);
            }
            Op::CreateCollection { .. } | Op::SetHidden { .. } => {}
        }
    }
    uses
}

fn index_uses_json(index: &IndexSpec) -> bool {
    index.partial_filter.is_some() || index.collation.is_some()
}

/// The validators as `const`s of JSON text.
#[derive(Default)]
struct Consts {
    items: Vec<TokenStream>,
    /// `(collection, role)` and the name given.
    taken: Vec<((String, String), String)>,
}

impl Consts {
    /// A `const` holding `schema`; its name.
    fn add(&mut self, collection: &str, role: &str, schema: &Value) -> syn::Ident {
        let key = (collection.to_string(), role.to_string());
        if let Some((_, name)) = self.taken.iter().find(|(k, _)| *k == key) {
            return format_ident!("{}", name);
        }
        let base = format!("{}_{role}", const_name(collection));
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.iter().any(|(_, taken)| *taken == name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.taken.push((key, name.clone()));
        let ident = format_ident!("{}", name);
        let text = raw_string(&serde_json::to_string_pretty(schema).expect("JSON values serialize"));
        let what = match role {
            "PREVIOUS_SCHEMA" => format!(" The validator `{collection}` had before this migration."),
            _ => format!(" The validator of `{collection}` as declared when this migration was generated."),
        };
        self.items.push(quote! {
            #[doc = #what]
            const #ident: &str = #text;
        });
        ident
    }
}

fn const_name(collection: &str) -> String {
    let mut name: String = collection
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, "C_");
    }
    name
}

/// `text` as a raw string literal with as many `#`s as it needs.
fn raw_string(text: &str) -> TokenStream {
    let mut hashes = "#".to_string();
    while text.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    format!("r{hashes}\"{text}\"{hashes}")
        .parse()
        .expect("a raw string literal")
}

fn level(level: &str) -> TokenStream {
    match level {
        "moderate" => quote! { ValidationLevel::Moderate },
        _ => quote! { ValidationLevel::Strict },
    }
}

/// The `up` and `down` statements of `op`; the validators they read are
/// declared in `up` and `down`.
fn statements(op: &Op, consts: &mut Consts, up: &mut Body, down: &mut Body) -> (TokenStream, TokenStream) {
    let c = op.collection();
    match op {
        Op::CreateCollection { .. } => (quote! { ctx.create_collection(#c).await?; }, quote! {}),
        Op::StageValidator {
            schema,
            level: l,
            previous,
            ..
        } => {
            let after = up.local(&consts.add(c, "SCHEMA", schema));
            let l = level(l);
            let restore = match previous {
                Some((before, before_level)) => {
                    let before = down.local(&consts.add(c, "PREVIOUS_SCHEMA", before));
                    let before_level = level(before_level);
                    quote! { ctx.restore_validator(#c, Some(&#before), #before_level).await?; }
                }
                None => quote! { ctx.restore_validator(#c, None, #l).await?; },
            };
            (quote! { ctx.stage_validator(#c, &#after, #l).await?; }, restore)
        }
        Op::EnforceValidator { schema, level: l, .. } => {
            let constant = consts.add(c, "SCHEMA", schema);
            let (after_up, after_down) = (up.local(&constant), down.local(&constant));
            let l = level(l);
            (
                quote! { ctx.enforce_validator(#c, &#after_up, #l).await?; },
                quote! { ctx.stage_validator(#c, &#after_down, #l).await?; },
            )
        }
        Op::RemoveValidator {
            previous: (before, before_level),
            ..
        } => {
            let before = down.local(&consts.add(c, "PREVIOUS_SCHEMA", before));
            let before_level = level(before_level);
            (
                quote! { ctx.restore_validator(#c, None, #before_level).await?; },
                quote! { ctx.restore_validator(#c, Some(&#before), #before_level).await?; },
            )
        }
        Op::BuildIndex { index, .. } => {
            let (expr, name) = (index_expr(index), &index.name);
            (
                quote! { ctx.ensure_index(#c, &#expr).await?; },
                quote! { ctx.drop_built_index(#c, #name).await?; },
            )
        }
        Op::ReplaceIndex { old, new, .. } => {
            let (old_expr, old_name) = (index_expr(old), &old.name);
            let (new_expr, new_name) = (index_expr(new), &new.name);
            (
                quote! {
                    ctx.replace_index(#c, #old_name, &#new_expr).await?;
                },
                quote! {
                    ctx.replace_index(#c, #new_name, &#old_expr).await?;
                },
            )
        }
        Op::SetHidden { index, hidden, .. } => {
            let name = &index.name;
            let hide = quote! { ctx.hide_index(#c, #name).await?; };
            let show = quote! { ctx.unhide_index(#c, #name).await?; };
            if *hidden {
                (hide, show)
            } else {
                (show, hide)
            }
        }
        Op::DropHiddenIndex { index, .. } => {
            let (expr, name) = (index_expr(index), &index.name);
            (
                quote! { ctx.drop_hidden_index(#c, #name).await?; },
                quote! { ctx.ensure_index(#c, &#expr).await?; },
            )
        }
    }
}

/// `Index::on([("email", 1)]).unique()` and the like.
fn index_expr(index: &IndexSpec) -> TokenStream {
    let directions: Vec<&Value> = index.keys.iter().map(|(_, d)| d).collect();
    let one_type = directions.iter().all(|d| d.is_i64()) || directions.iter().all(|d| d.is_string());
    let mut expr = if one_type {
        let keys = index.keys.iter().map(|(field, direction)| {
            let v = bson_tokens(direction);
            quote! { (#field, #v) }
        });
        quote! { Index::on([#(#keys),*]) }
    } else {
        // Numbers and names (`"2dsphere"`) in one index: not one array's type.
        let keys = index.keys.iter().map(|(field, direction)| {
            let v = bson_tokens(direction);
            quote! { #field: #v }
        });
        quote! { Index::new(doc! { #(#keys),* }) }
    };
    if index.name != index.default_name() {
        let name = &index.name;
        expr = quote! { #expr.named(#name) };
    }
    if index.unique {
        expr = quote! { #expr.unique() };
    }
    if index.sparse {
        expr = quote! { #expr.sparse() };
    }
    if let Some(filter) = &index.partial_filter {
        let filter = document(filter);
        expr = quote! { #expr.partial(#filter) };
    }
    if let Some(secs) = index.expire_after_seconds {
        let secs = Literal::i64_unsuffixed(secs);
        expr = quote! { #expr.ttl(#secs) };
    }
    if let Some(collation) = &index.collation {
        let collation = document(collation);
        expr = quote! { #expr.collation(#collation) };
    }
    if index.hidden {
        expr = quote! { #expr.hidden() };
    }
    expr
}

/// A partial filter or a collation as JSON text, which reads extended
/// JSON (a date, an ObjectId) as `doc!` would not.
fn document(value: &Value) -> TokenStream {
    let text = raw_string(&value.to_string());
    quote! { schema::json_document(#text)? }
}

/// A value inside `doc!`.
fn bson_tokens(value: &Value) -> TokenStream {
    match value {
        Value::Null => quote! { null },
        Value::Bool(b) => quote! { #b },
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => match i32::try_from(i) {
                Ok(small) => Literal::i32_unsuffixed(small).into_token_stream(),
                Err(_) => Literal::i64_suffixed(i).into_token_stream(),
            },
            (None, Some(f)) => Literal::f64_unsuffixed(f).into_token_stream(),
            // A u64 past i64::MAX: what the relaxed form never writes.
            (None, None) => Literal::u64_suffixed(n.as_u64().unwrap_or(0)).into_token_stream(),
        },
        Value::String(s) => quote! { #s },
        Value::Array(items) => {
            let items = items.iter().map(bson_tokens);
            quote! { [#(#items),*] }
        }
        Value::Object(map) => {
            let entries = map.iter().map(|(k, v)| {
                let v = bson_tokens(v);
                quote! { #k: #v }
            });
            quote! { { #(#entries),* } }
        }
    }
}
