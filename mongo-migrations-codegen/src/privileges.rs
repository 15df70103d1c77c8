//! The privileges a migration needs beyond reads and writes, read off its
//! calls of the runtime's schema operations, so that a run can check them
//! all before it writes anything: `collMod` is not in the `readWrite` role
//! (the manual's "Built-In Roles"), which managed-cloud users often have
//! alone.

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;

/// The context's methods, and the action each needs on the database.
const NEEDS: &[(&str, &str)] = &[
    ("ensure_index", "createIndex"),
    ("replace_index", "createIndex"),
    ("drop_index", "dropIndex"),
    ("drop_built_index", "dropIndex"),
    ("drop_hidden_index", "dropIndex"),
    ("hide_index", "collMod"),
    ("unhide_index", "collMod"),
    ("stage_validator", "collMod"),
    ("enforce_validator", "collMod"),
    ("force_validator", "collMod"),
    ("restore_validator", "collMod"),
];

/// The actions the calls in `file` need, sorted and each once.
pub(crate) fn needs(file: &syn::File) -> Vec<String> {
    let mut found = BTreeSet::new();
    scan(file.to_token_stream(), &mut found);
    found.into_iter().map(str::to_string).collect()
}

/// Collects the action of every `. method (` of [`NEEDS`] in `tokens`.
fn scan(tokens: TokenStream, found: &mut BTreeSet<&'static str>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Ident(ident) => {
                let method = i > 0 && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '.');
                let called = matches!(trees.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == proc_macro2::Delimiter::Parenthesis);
                if method && called {
                    if let Some((_, action)) = NEEDS.iter().find(|(name, _)| ident == name) {
                        found.insert(action);
                    }
                }
            }
            TokenTree::Group(g) => scan(g.stream(), found),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    fn needs(source: &str) -> Vec<String> {
        super::needs(&syn::parse_file(source).unwrap())
    }

    #[test]
    fn schema_operations_name_what_they_need() {
        let src = r#"
            pub async fn up(ctx: &mut C) -> R {
                ctx.stage_validator("users", &s, ValidationLevel::Strict).await?;
                ctx.ensure_index("users", &Index::on([("a", 1)])).await?;
                ctx.hide_index("users", "b_1").await?;
                Ok(())
            }
            pub async fn down(ctx: &mut C) -> R { ctx.drop_built_index("users", "a_1").await?; Ok(()) }
        "#;
        assert_eq!(needs(src), ["collMod", "createIndex", "dropIndex"]);
    }

    #[test]
    fn plain_writes_and_lookalikes_need_nothing_more() {
        let src = r#"
            fn hide_index() {}
            pub async fn up(ctx: &mut C) -> R {
                hide_index();
                ctx.db()?.collection::<D>("users").insert_one(doc! {}).await?;
                let stage_validator = 1;
                Ok(())
            }
        "#;
        assert_eq!(needs(src), Vec::<String>::new());
    }
}
