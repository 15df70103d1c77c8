//! Which directions of a migration walk in batches: a `.batches(` call in
//! `up` or `down`, or in a function of the same file that it calls. The
//! registry declares them (`Migration::walks`), so the runtime can resume
//! such a run from its first instant rather than block it.

use std::collections::{HashMap, HashSet};

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::Item;

/// `[up, down]`: whether each direction's function walks in batches.
pub(crate) fn walks(file: &syn::File) -> [bool; 2] {
    let bodies: HashMap<String, TokenStream> = file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Fn(f) => Some((f.sig.ident.to_string(), f.block.to_token_stream())),
            _ => None,
        })
        .collect();
    ["up", "down"].map(|name| reaches_walk(name, &bodies, &mut HashSet::new()))
}

/// Whether `name`'s body calls `.batches(`, or calls a function of the
/// file that does.
fn reaches_walk<'a>(name: &'a str, bodies: &'a HashMap<String, TokenStream>, seen: &mut HashSet<&'a str>) -> bool {
    let Some(body) = bodies.get(name) else { return false };
    if !seen.insert(name) {
        return false;
    }
    let mut calls = Vec::new();
    if scan(body.clone(), &mut calls) {
        return true;
    }
    calls.iter().any(|callee| match bodies.get_key_value(callee.as_str()) {
        Some((key, _)) => reaches_walk(key, bodies, seen),
        None => false,
    })
}

/// Finds `. batches (` in `tokens`; collects `ident (` calls on the way.
fn scan(tokens: TokenStream, calls: &mut Vec<String>) -> bool {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        let called = matches!(trees.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == proc_macro2::Delimiter::Parenthesis);
        match tree {
            TokenTree::Ident(ident) if called => {
                let method = i > 0 && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '.');
                if method && ident == "batches" {
                    return true;
                }
                if !method {
                    calls.push(ident.to_string());
                }
            }
            TokenTree::Group(g) if scan(g.stream(), calls) => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    fn walks(source: &str) -> [bool; 2] {
        super::walks(&syn::parse_file(source).unwrap())
    }

    #[test]
    fn a_direct_walk_marks_its_direction_only() {
        let src = r#"
            pub async fn up(ctx: &mut C) -> R { ctx.batches("users", doc! {}).size(10).run(f).await?; Ok(()) }
            pub async fn down(ctx: &mut C) -> R { ctx.db()?.collection::<D>("users").drop().await?; Ok(()) }
        "#;
        assert_eq!(walks(src), [true, false]);
    }

    #[test]
    fn a_walk_in_a_helper_of_the_same_file_counts_through_calls() {
        let src = r#"
            async fn backfill(ctx: &C) -> R { inner(ctx).await }
            async fn inner(ctx: &C) -> R { if x { ctx.batches("a", doc! {}).update_each(g).await?; } Ok(()) }
            pub async fn up(ctx: &mut C) -> R { prepare(); backfill(ctx).await }
            pub async fn down(ctx: &mut C) -> R { backfill(ctx).await }
        "#;
        assert_eq!(walks(src), [true, true]);
    }

    #[test]
    fn no_walk_and_lookalikes_are_not_walks() {
        let src = r#"
            fn batches() {}
            async fn recursive(n: u32) -> R { recursive(n - 1).await }
            pub async fn up(ctx: &mut C) -> R { batches(); recursive(3).await; let batches = 1; ctx.db()?; Ok(()) }
        "#;
        assert_eq!(walks(src), [false, false]);
    }
}
