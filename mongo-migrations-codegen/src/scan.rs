//! Reads a migrations directory: file names, then each file with `syn`.

use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use sha2::{Digest, Sha256};
use syn::{Expr, Item, Lit, Meta};

use crate::names::parse_module_name;
use crate::{Error, Result};

/// The registry module's own file, skipped when scanning.
pub const REGISTRY_FILE: &str = "mod.rs";

/// One migration file, as the registry needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MigrationFile {
    pub path: PathBuf,
    pub module: String,
    pub version: String,
    pub name: String,
    /// The file's inner doc comment (`//!`), trimmed.
    pub description: String,
    pub has_down: bool,
    /// The module declares `pub async fn plan(ctx: &mut PlanContext)`: what
    /// it would do, for `cargo mongo-migrate plan`.
    #[serde(default)]
    pub has_plan: bool,
    /// The file declares `const TRANSACTIONAL: bool`.
    pub has_transactional: bool,
    /// Its value: whether `up` and `down` run in a transaction.
    pub transactional: bool,
    /// `sha256:` of the token stream without comments and doc comments.
    pub checksum: String,
    /// The versions of `pub const REPLACES: &[u64]`, for a squash.
    pub replaces: Vec<u64>,
    /// `pub const PHASE: Phase`, if declared: `pre-deploy` or `post-deploy`.
    pub phase: Option<String>,
    /// `pub const INDEPENDENT: bool = true;`: later migrations do not depend
    /// on it, so a run with `continue_on_error` goes on past its failure.
    #[serde(default)]
    pub independent: bool,
    /// The actions its schema operations need beyond reads and writes
    /// (`collMod`, `createIndex`, `dropIndex`; see `privileges.rs`).
    #[serde(default)]
    pub needs: Vec<String>,
    /// Whether `up` and `down` walk in batches (`[up, down]`; see `walks.rs`),
    /// or, with `pub const REPEATABLE: bool = true;`, are safe to repeat:
    /// either way a run cut off or failed is run again by the next `up` or `down`.
    pub walks: [bool; 2],
}

/// Every migration in `dir`, in version order: the `.rs` files whose names
/// start with `m` and a digit (one with a malformed name is an error).
/// `mod.rs`, other files and helper modules (see [`helpers`]) are not
/// migrations.
pub fn scan(dir: &Path) -> Result<Vec<MigrationFile>> {
    let paths = migration_paths(dir)?;
    finish(read_all(&paths)?)
}

/// Every migration in `dir` that reads, in version order, and every error:
/// each unreadable file, then each duplicate version. For `check`, which
/// reports all problems at once.
pub fn scan_all(dir: &Path) -> Result<(Vec<MigrationFile>, Vec<Error>)> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut paths = migration_paths(dir)?;
    paths.sort();
    for path in paths {
        match read(&path) {
            Ok(file) => files.push(file),
            Err(e) => errors.push(e),
        }
    }
    files.sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.path.cmp(&b.path)));
    for pair in files.windows(2).filter(|w| w[0].version == w[1].version) {
        errors.push(Error::DuplicateVersion {
            version: pair[0].version.clone(),
            first: pair[0].path.clone(),
            second: pair[1].path.clone(),
        });
    }
    Ok((files, errors))
}

/// A module of shared code beside the migrations: a `.rs` file or a folder
/// with a `mod.rs` whose name does not start with `m` and a digit. The
/// registry declares it (`pub mod <name>;`), so migrations reach it as
/// `super::<name>`; it is no migration and never runs by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// The module's name.
    pub module: String,
    /// Its file: `<name>.rs`, or `<name>/mod.rs`.
    pub path: PathBuf,
}

/// Whether a file or folder name is a migration's (`m` then a digit);
/// anything else is a helper module.
fn names_a_migration(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next() == Some('m') && chars.next().is_some_and(|c| c.is_ascii_digit())
}

/// The `.rs` files of `dir` that are migrations (not `mod.rs`, not helpers).
pub(crate) fn migration_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(entries(dir)?
        .into_iter()
        .filter(|path| {
            let is_rs = path.extension().is_some_and(|e| e == "rs") && path.is_file();
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            is_rs && path.file_name().is_some_and(|n| n != REGISTRY_FILE) && names_a_migration(&stem)
        })
        .collect())
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        paths.push(entry.map_err(io)?.path());
    }
    paths.sort();
    Ok(paths)
}

/// The helper modules of `dir`, by name. A helper that defines `up` looks
/// like a misnamed migration, which would never run: refused.
pub fn helpers(dir: &Path) -> Result<Vec<Helper>> {
    let mut helpers = Vec::new();
    for path in entries(dir)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (module, file) = if path.is_dir() && path.join(REGISTRY_FILE).is_file() {
            (name.clone(), path.join(REGISTRY_FILE))
        } else if path.is_file() && name.ends_with(".rs") && name != REGISTRY_FILE {
            (name.trim_end_matches(".rs").to_string(), path.clone())
        } else {
            continue;
        };
        if names_a_migration(&module) || module.starts_with('.') {
            continue;
        }
        let bad = |reason: String| Error::BadFileName {
            path: path.clone(),
            reason,
        };
        if crate::names::normalise_name(&module).ok().as_deref() != Some(module.as_str()) {
            return Err(bad(format!(
                "`{module}` is neither a migration nor a helper module's snake_case name"
            )));
        }
        let source = std::fs::read_to_string(&file).map_err(|source| Error::Io {
            path: file.clone(),
            source,
        })?;
        let defines_up = syn::parse_file(&source)
            .is_ok_and(|f| f.items.iter().any(|i| matches!(i, Item::Fn(f) if f.sig.ident == "up")));
        if defines_up {
            return Err(bad(format!(
                "it defines `up` like a migration, but as `{module}` it is a helper module and would never run"
            )));
        }
        helpers.push(Helper { module, path: file });
    }
    Ok(helpers)
}

/// Sorts by version and refuses duplicates.
pub(crate) fn finish(mut files: Vec<MigrationFile>) -> Result<Vec<MigrationFile>> {
    files.sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.path.cmp(&b.path)));
    if let Some(pair) = files.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(Error::DuplicateVersion {
            version: pair[0].version.clone(),
            first: pair[0].path.clone(),
            second: pair[1].path.clone(),
        });
    }
    Ok(files)
}

/// Parses files on every core: a large history should not slow `cargo build`.
pub(crate) fn read_all(paths: &[PathBuf]) -> Result<Vec<MigrationFile>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = paths.len().div_ceil(threads).max(64);
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|p| read(p)).collect::<Result<Vec<_>>>()))
            .collect();
        let mut files = Vec::with_capacity(paths.len());
        for worker in workers {
            files.extend(worker.join().expect("parser thread panicked")?);
        }
        Ok(files)
    })
}

/// Parses one migration file.
pub fn read(path: &Path) -> Result<MigrationFile> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let (version, name) = parse_module_name(stem).map_err(|reason| Error::BadFileName {
        path: path.to_path_buf(),
        reason,
    })?;
    let source = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let syntax = |span, message| syntax_error(path, span, message);
    // Lexed once: the same tokens are parsed and hashed.
    let tokens = lex(&source, path)?;
    let file: syn::File = syn::parse2(tokens.clone()).map_err(|e| syntax(e.span(), e.to_string()))?;

    let mut has_up = false;
    let mut has_down = false;
    let mut has_plan = false;
    let mut has_transactional = false;
    let mut transactional = false;
    let mut repeatable = false;
    let mut independent = false;
    let mut replaces = Vec::new();
    let mut phase = None;
    for item in &file.items {
        match item {
            Item::Fn(f) if f.sig.ident == "up" || f.sig.ident == "down" || f.sig.ident == "plan" => {
                if f.sig.asyncness.is_none() {
                    return Err(syntax(
                        f.sig.ident.span(),
                        format!("`{}` must be an `async fn`", f.sig.ident),
                    ));
                }
                if !matches!(f.vis, syn::Visibility::Public(_)) {
                    return Err(syntax(f.sig.ident.span(), format!("`{}` must be `pub`", f.sig.ident)));
                }
                if f.sig.ident == "up" {
                    has_up = true;
                } else if f.sig.ident == "plan" {
                    has_plan = true;
                } else {
                    has_down = true;
                }
            }
            Item::Const(c) if c.ident == "TRANSACTIONAL" => {
                has_transactional = true;
                transactional = bool_literal(&c.expr).ok_or_else(|| {
                    syntax(
                        c.ident.span(),
                        "`TRANSACTIONAL` must be `true` or `false`, a literal the CLI can read without building".into(),
                    )
                })?;
            }
            Item::Const(c) if c.ident == "REPEATABLE" => {
                repeatable = bool_literal(&c.expr).ok_or_else(|| {
                    syntax(
                        c.ident.span(),
                        "`REPEATABLE` must be `true` or `false`, a literal the CLI can read without building".into(),
                    )
                })?;
            }
            Item::Const(c) if c.ident == "INDEPENDENT" => {
                independent = bool_literal(&c.expr).ok_or_else(|| {
                    syntax(
                        c.ident.span(),
                        "`INDEPENDENT` must be `true` or `false`, a literal the CLI can read without building".into(),
                    )
                })?;
            }
            Item::Const(c) if c.ident == "PHASE" => {
                phase = Some(phase_of(&c.expr).ok_or_else(|| {
                    syntax(
                        c.ident.span(),
                        "`PHASE` must be `Phase::PreDeploy` or `Phase::PostDeploy`".into(),
                    )
                })?);
            }
            Item::Const(c) if c.ident == "REPLACES" => {
                replaces = versions_list(&c.expr).ok_or_else(|| {
                    syntax(
                        c.ident.span(),
                        "`REPLACES` must be a list of version literals: `pub const REPLACES: &[u64] = &[20260101000000, ...];`"
                            .into(),
                    )
                })?;
            }
            _ => {}
        }
    }
    if !has_up {
        return Err(syntax(
            proc_macro2::Span::call_site(),
            "no `pub async fn up(ctx: &mut MigrationContext) -> MigrationResult`".into(),
        ));
    }
    Ok(MigrationFile {
        path: path.to_path_buf(),
        module: stem.to_string(),
        version,
        name,
        description: description(&file.attrs),
        has_down,
        has_plan,
        has_transactional,
        transactional,
        checksum: checksum_tokens(tokens),
        replaces,
        phase,
        independent,
        needs: crate::privileges::needs(&file),
        // A body safe to repeat from its start is run again, as a walk's is.
        walks: if repeatable {
            [true; 2]
        } else {
            crate::walks::walks(&file)
        },
    })
}

/// `true` or `false`.
pub(crate) fn bool_literal(expr: &Expr) -> Option<bool> {
    match expr {
        Expr::Lit(syn::ExprLit { lit: Lit::Bool(b), .. }) => Some(b.value),
        _ => None,
    }
}

/// `Phase::PostDeploy` (or any path ending so) as `post-deploy`.
fn phase_of(expr: &Expr) -> Option<String> {
    let Expr::Path(p) = expr else { return None };
    match p.path.segments.last()?.ident.to_string().as_str() {
        "PreDeploy" => Some("pre-deploy".into()),
        "PostDeploy" => Some("post-deploy".into()),
        _ => None,
    }
}

/// `&[20260101000000, ...]` as numbers.
fn versions_list(expr: &Expr) -> Option<Vec<u64>> {
    let Expr::Reference(r) = expr else { return None };
    let Expr::Array(array) = &*r.expr else { return None };
    array
        .elems
        .iter()
        .map(|e| match e {
            Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse().ok(),
            _ => None,
        })
        .collect()
}

fn description(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|l| l.trim().to_string())
        .collect();
    lines.join("\n").trim().to_string()
}

/// Hashes the token stream, so whitespace, line endings, comments and doc
/// comments do not change the checksum, while any code change does.
pub fn checksum(source: &str) -> Result<String> {
    Ok(checksum_tokens(lex(source, Path::new(""))?))
}

fn lex(source: &str, path: &Path) -> Result<TokenStream> {
    source
        .parse()
        .map_err(|e: proc_macro2::LexError| syntax_error(path, e.span(), e.to_string()))
}

/// A syntax error at `span` of `path`, with a 1-based column as editors show it.
fn syntax_error(path: &Path, span: proc_macro2::Span, message: String) -> Error {
    let start = span.start();
    Error::Syntax {
        path: path.to_path_buf(),
        line: start.line,
        column: start.column + 1,
        message,
    }
}

fn checksum_tokens(tokens: TokenStream) -> String {
    let mut hasher = Sha256::new();
    hash_tokens(tokens, &mut hasher);
    let digest = hasher.finalize();
    format!("sha256:{digest:x}")
}

fn hash_tokens(tokens: TokenStream, hasher: &mut Sha256) {
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        match tree {
            // Doc comments reach the lexer as `#[doc = ".."]` / `#![doc = ".."]`.
            TokenTree::Punct(p) if p.as_char() == '#' => {
                let inner = matches!(iter.peek(), Some(TokenTree::Punct(b)) if b.as_char() == '!');
                let mut lookahead = iter.clone();
                if inner {
                    lookahead.next();
                }
                if let Some(TokenTree::Group(g)) = lookahead.next() {
                    if is_doc(&g) {
                        iter = lookahead;
                        continue;
                    }
                }
                hasher.update(b"#");
            }
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    proc_macro2::Delimiter::Parenthesis => ("(", ")"),
                    proc_macro2::Delimiter::Brace => ("{", "}"),
                    proc_macro2::Delimiter::Bracket => ("[", "]"),
                    proc_macro2::Delimiter::None => ("", ""),
                };
                hasher.update(open.as_bytes());
                hash_tokens(g.stream(), hasher);
                hasher.update(close.as_bytes());
            }
            // Spacing tells `<<` from `< <`.
            TokenTree::Punct(p) => {
                hasher.update(p.as_char().to_string().as_bytes());
                if p.spacing() == proc_macro2::Spacing::Alone {
                    hasher.update(b" ");
                }
            }
            // Moving a migration to the runtime's new name is no edit.
            TokenTree::Ident(i) if i == RUNTIME_CRATE => {
                hasher.update(FORMER_RUNTIME_CRATE.as_bytes());
                hasher.update(b" ");
            }
            other => {
                hasher.update(other.to_string().as_bytes());
                hasher.update(b" ");
            }
        }
    }
}

/// The runtime crate as migrations name it, and the name it had before 0.2
/// (`mongo-migrate`, which is another crate's on crates.io). The checksum
/// hashes the new name as the old one: the checksums recorded by databases
/// migrated before the rename still match the renamed files.
const RUNTIME_CRATE: &str = "mongo_migrations";
const FORMER_RUNTIME_CRATE: &str = "mongo_migrate";

fn is_doc(group: &proc_macro2::Group) -> bool {
    group.delimiter() == proc_macro2::Delimiter::Bracket
        && matches!(group.stream().into_iter().next(), Some(TokenTree::Ident(i)) if i == "doc")
}

#[cfg(test)]
mod tests {
    use super::checksum;

    /// `PHASE` and `REPLACES` reach the registry; malformed ones are refused with their line.
    #[test]
    fn reads_phase_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m20260102_000000_drop_old.rs");
        let good = "pub const PHASE: Phase = Phase::PostDeploy;\npub const REPLACES: &[u64] = &[20260101000000];\npub async fn up(ctx: &mut C) -> R { Ok(()) }\n";
        std::fs::write(&path, good).unwrap();
        let file = super::read(&path).unwrap();
        assert_eq!(file.phase.as_deref(), Some("post-deploy"));
        assert_eq!(file.replaces, [20260101000000]);
        let rendered = crate::render(&[file], crate::Layout::Module);
        assert!(rendered.contains("m20260102_000000_drop_old::PHASE,\n"), "{rendered}");
        assert!(
            rendered.contains("::mongo_migrations::Migration::replacing(\n"),
            "{rendered}"
        );
        for (bad, needle) in [
            ("pub const PHASE: Phase = Phase::Later;\n", "`PHASE` must be"),
            ("pub const REPLACES: &[u64] = &[LAST];\n", "`REPLACES` must be"),
        ] {
            std::fs::write(&path, format!("{bad}pub async fn up(ctx: &mut C) -> R {{ Ok(()) }}\n")).unwrap();
            let err = super::read(&path).unwrap_err().to_string();
            assert!(err.contains(":1:") && err.contains(needle), "{err}");
        }
    }

    /// `REPEATABLE = true` makes both directions run again after a cut-off
    /// or failed run, as a walk's do; `false` leaves the walk detection alone.
    #[test]
    fn repeatable_migrations_resume_as_walks_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m20260102_000000_step.rs");
        let up = "pub async fn up(ctx: &mut C) -> R { Ok(()) }\n";
        for (decl, walks) in [
            ("pub const REPEATABLE: bool = true;\n", [true, true]),
            ("pub const REPEATABLE: bool = false;\n", [false, false]),
            ("", [false, false]),
        ] {
            std::fs::write(&path, format!("{decl}{up}")).unwrap();
            assert_eq!(super::read(&path).unwrap().walks, walks, "{decl}");
        }
        std::fs::write(&path, format!("pub const REPEATABLE: bool = !false;\n{up}")).unwrap();
        let err = super::read(&path).unwrap_err().to_string();
        assert!(err.contains("`REPEATABLE` must be"), "{err}");
    }

    /// The value of `TRANSACTIONAL` is read, not only that it is declared.
    #[test]
    fn reads_the_value_of_transactional() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m20260102_000000_step.rs");
        let up = "pub async fn up(ctx: &mut C) -> R { Ok(()) }\n";
        for (decl, has, value) in [
            ("pub const TRANSACTIONAL: bool = false;\n", true, false),
            ("pub const TRANSACTIONAL: bool = true;\n", true, true),
            ("", false, false),
        ] {
            std::fs::write(&path, format!("{decl}{up}")).unwrap();
            let file = super::read(&path).unwrap();
            assert_eq!((file.has_transactional, file.transactional), (has, value), "{decl}");
        }
        std::fs::write(&path, format!("pub const TRANSACTIONAL: bool = cfg!(x);\n{up}")).unwrap();
        let err = super::read(&path).unwrap_err().to_string();
        assert!(
            err.contains(":1:") && err.contains("must be `true` or `false`"),
            "{err}"
        );
    }

    const BASE: &str = "//! Adds an index.\nuse x::y;\n\npub async fn up(ctx: &mut C) -> R {\n    ctx.go(1).await\n}\n";

    #[test]
    fn ignores_whitespace_comments_docs_and_crlf() {
        let variants = [
            BASE.replace('\n', "\r\n"),
            BASE.replace("    ", "\t\t"),
            BASE.replace("//! Adds an index.", "//! Adds the email index, unique."),
            BASE.replace("use x::y;", "use x::y; // why: z"),
            BASE.replace("pub async fn", "/// Applies it.\npub async fn"),
        ];
        for v in variants {
            assert_eq!(checksum(BASE).unwrap(), checksum(&v).unwrap(), "{v:?}");
        }
    }

    #[test]
    fn changes_with_the_code() {
        assert_ne!(
            checksum(BASE).unwrap(),
            checksum(&BASE.replace("go(1)", "go(2)")).unwrap()
        );
        assert_ne!(
            checksum(BASE).unwrap(),
            checksum(&BASE.replace("\"", "'")).unwrap() + "x"
        );
        let with_string = "fn f() { g(\"a b\") }";
        assert_ne!(
            checksum(with_string).unwrap(),
            checksum("fn f() { g(\"a  b\") }").unwrap()
        );
    }

    #[test]
    fn the_runtime_s_former_name_hashes_as_its_new_one() {
        let old = "use mongo_migrate::prelude::*; fn up() { mongo_migrate::go() }";
        assert_eq!(
            checksum(old).unwrap(),
            checksum(&old.replace("mongo_migrate", "mongo_migrations")).unwrap()
        );
        // Only the whole identifier: another crate's name is code.
        assert_ne!(
            checksum(old).unwrap(),
            checksum(&old.replace("mongo_migrate", "mongo_migrate_extra")).unwrap()
        );
    }

    #[test]
    fn looks_like_sha256() {
        let c = checksum(BASE).unwrap();
        assert!(c.starts_with("sha256:") && c.len() == 7 + 64, "{c}");
    }
}
