//! The README's sections, as tests run them word for word: its code blocks
//! and its `cargo mongo-migrate` command lines.

use super::{read, root};

/// The text of the README's section under `heading` (`## Quick start`),
/// up to the next heading of the same level or higher.
pub fn section(heading: &str) -> String {
    let readme = read(root().join("README.md"));
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no `{heading}`"));
    let body = &readme[start + heading.len() + 2..];
    // A heading outside code blocks (a shell comment is not one).
    let mut in_code = false;
    let end = body
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            if body[i..].starts_with("```") {
                in_code = !in_code;
            }
            let hashes = body[i..].chars().take_while(|c| *c == '#').count();
            !in_code && hashes >= 1 && hashes <= level && body[i + hashes..].starts_with(' ')
        })
        .unwrap_or(body.len());
    body[..end].to_string()
}

/// The code blocks of `text` whose info string starts with `lang`, in order.
pub fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) if info.starts_with(lang) => current = Some(String::new()),
            (Some(block), Some("")) => {
                out.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// The `cargo mongo-migrate` lines of the `sh` blocks of `text`, each as
/// its arguments after `mongo-migrate`, a trailing `# comment` left out.
pub fn cli_lines(text: &str) -> Vec<Vec<String>> {
    blocks(text, "sh")
        .iter()
        .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|line| {
            let command = line.split(" #").next().unwrap_or_default().trim().to_string();
            let rest = command.strip_prefix("cargo mongo-migrate ")?;
            Some(rest.split_whitespace().map(str::to_string).collect())
        })
        .collect()
}
