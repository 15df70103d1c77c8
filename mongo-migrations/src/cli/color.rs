//! Colour as cargo decides it: `--color`, else `CARGO_TERM_COLOR`, else
//! auto, where `NO_COLOR`, `CLICOLOR`, `TERM=dumb` and a stream that is not
//! a terminal turn it off (as `anstream` reads them).

/// `--color WHEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless `NO_COLOR` or `TERM=dumb`.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The choice from the flag, else from `CARGO_TERM_COLOR` (`cargo_term_color`):
/// a pure function of both.
pub fn choose(flag: Option<ColorChoice>, cargo_term_color: Option<&str>) -> anstream::ColorChoice {
    let from_env = || match cargo_term_color.map(str::trim) {
        Some("always") => Some(ColorChoice::Always),
        Some("never") => Some(ColorChoice::Never),
        _ => None,
    };
    match flag.or_else(from_env) {
        Some(ColorChoice::Always) => anstream::ColorChoice::Always,
        Some(ColorChoice::Never) => anstream::ColorChoice::Never,
        // `anstream` reads NO_COLOR, CLICOLOR(_FORCE) and TERM=dumb itself.
        Some(ColorChoice::Auto) | None => anstream::ColorChoice::Auto,
    }
}

/// Sets the choice for everything this process prints, and returns it
/// (to pass on to cargo as `--color`).
pub fn apply(flag: Option<ColorChoice>) -> anstream::ColorChoice {
    let choice = choose(flag, std::env::var("CARGO_TERM_COLOR").ok().as_deref());
    choice.write_global();
    choice
}

#[cfg(test)]
mod tests {
    use super::*;
    use anstream::ColorChoice as C;

    #[test]
    fn the_flag_wins_over_cargo_term_color() {
        assert_eq!(choose(Some(ColorChoice::Never), Some("always")), C::Never);
        assert_eq!(choose(Some(ColorChoice::Always), Some("never")), C::Always);
        assert_eq!(choose(Some(ColorChoice::Auto), Some("always")), C::Auto);
    }

    #[test]
    fn cargo_term_color_applies_without_the_flag() {
        assert_eq!(choose(None, Some("always")), C::Always);
        assert_eq!(choose(None, Some("never")), C::Never);
        assert_eq!(choose(None, Some("auto")), C::Auto);
        assert_eq!(choose(None, Some("bogus")), C::Auto);
        assert_eq!(choose(None, None), C::Auto);
    }
}
