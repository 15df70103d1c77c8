//! Best-effort checks of a migration's code for `cargo mongo-migrate check`:
//! operations MongoDB refuses inside a transaction, and unbatched bulk
//! writes. They read the token tree, so they see calls, not types: a
//! `drop()` on something other than a collection is flagged too.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::Item;

/// The comment that acknowledges an unbatched `update_many`/`delete_many`.
pub const UNBATCHED_MARKER: &str = "mongo-migrate: unbatched";

/// Methods MongoDB refuses inside a multi-document transaction (index
/// builds on existing collections, drops).
const NOT_IN_TRANSACTION: &[&str] = &["create_index", "create_indexes", "drop", "drop_index", "drop_indexes"];

/// Writes that touch every matching document in one command.
const UNBATCHED: &[&str] = &["update_many", "delete_many"];

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The migration fails when it runs.
    Error,
    /// Worth a look; does not fail `check`.
    Warning,
}

/// One finding, at a 1-based line and column of the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// What to do about it.
    pub hint: &'static str,
}

/// Lints one migration file's source.
pub fn lint(source: &str) -> Vec<Finding> {
    let Ok(file) = syn::parse_file(source) else {
        return Vec::new(); // the scan reports syntax errors
    };
    let Ok(tokens) = source.parse::<TokenStream>() else {
        return Vec::new();
    };
    let calls = method_calls(tokens);
    let mut findings = Vec::new();
    if transactional(&file) {
        for (name, line, column) in calls.iter().filter(|(n, ..)| NOT_IN_TRANSACTION.contains(&n.as_str())) {
            findings.push(Finding {
                severity: Severity::Error,
                line: *line,
                column: *column,
                message: format!(
                    "`{name}` in a transactional migration: MongoDB refuses index builds on existing collections and drops inside a transaction; move it to a migration with `TRANSACTIONAL = false`"
                ),
                hint: "put index builds and drops in a migration of their own with `pub const TRANSACTIONAL: bool = false;`",
            });
        }
    } else if !calls.iter().any(|(n, ..)| n == "batches") && !source.contains(UNBATCHED_MARKER) {
        for (name, line, column) in calls.iter().filter(|(n, ..)| UNBATCHED.contains(&n.as_str())) {
            findings.push(Finding {
                severity: Severity::Warning,
                line: *line,
                column: *column,
                message: format!(
                    "`{name}` runs unbatched over every matching document; on a large collection use `ctx.batches(..)`, or say it is small with a `// {UNBATCHED_MARKER}` comment"
                ),
                hint: "walk a large collection with `ctx.batches(..).update_each(..)`; a comment `// mongo-migrate: unbatched` silences this for a small one",
            });
        }
    }
    findings
}

/// `pub const TRANSACTIONAL: bool = true;`
fn transactional(file: &syn::File) -> bool {
    file.items.iter().any(|item| match item {
        Item::Const(c) if c.ident == "TRANSACTIONAL" => crate::scan::bool_literal(&c.expr) == Some(true),
        _ => false,
    })
}

/// Every `.name(` in the tokens, with its position.
fn method_calls(tokens: TokenStream) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    collect(tokens, &mut out);
    out
}

fn collect(tokens: TokenStream, out: &mut Vec<(String, usize, usize)>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Group(g) => collect(g.stream(), out),
            TokenTree::Ident(ident) => {
                let after_dot = i > 0 && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '.');
                let called =
                    matches!(trees.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis);
                if after_dot && called {
                    let start = ident.span().start();
                    out.push((ident.to_string(), start.line, start.column + 1));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_drops_and_index_builds_in_transactions_with_their_line() {
        let source = "pub const TRANSACTIONAL: bool = true;\npub async fn up(ctx: &mut C) -> R {\n    let db = ctx.db()?;\n    db.collection::<D>(\"a\").drop().await?;\n    coll.create_index(model).await?;\n    Ok(())\n}\n";
        let found = lint(source);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            (found[0].severity, found[0].line, found[0].column),
            (Severity::Error, 4, 29)
        );
        assert!(found[0].message.contains("`drop`"));
        assert_eq!(found[1].line, 5);
    }

    #[test]
    fn warns_on_unbatched_bulk_writes_unless_acknowledged_or_batched() {
        let plain = "pub async fn up(ctx: &mut C) -> R { coll.update_many(f, u).await?; Ok(()) }";
        let found = lint(plain);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
        let acknowledged = format!("// {UNBATCHED_MARKER}: 20 documents\n{plain}");
        assert!(lint(&acknowledged).is_empty());
        let batched = "pub async fn up(ctx: &mut C) -> R { ctx.batches(\"a\", f).run(g).await?; coll.delete_many(f).await?; Ok(()) }";
        assert!(lint(batched).is_empty());
        // Not transactional: a drop is fine.
        assert!(lint("pub const TRANSACTIONAL: bool = false; pub async fn up() { c.drop().await; }").is_empty());
    }
}
