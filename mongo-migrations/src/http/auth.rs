//! Who may call the API: nobody, a bearer token, or the service's own check.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};

use super::reply::ApiError;

type Check = dyn Fn(&HeaderMap) -> bool + Send + Sync;

/// Who may call the API.
#[derive(Clone)]
pub struct Authorization(Inner);

#[derive(Clone)]
enum Inner {
    Nobody,
    Bearer(Arc<str>),
    Check(Arc<Check>),
}

impl Authorization {
    /// Nobody: every `POST` is refused with 403, and every `GET` but
    /// `/migrations/ready` with 401 unless the API opens its reads
    /// ([`Api::open_reads`](super::Api::open_reads)), which makes a read-only API.
    pub fn read_only() -> Self {
        Authorization(Inner::Nobody)
    }

    /// `Authorization: Bearer <token>` (the scheme in any case, RFC 7235),
    /// compared in constant time. An empty token allows nobody.
    pub fn bearer(token: impl Into<String>) -> Self {
        let token: String = token.into();
        if token.is_empty() {
            return Self::read_only();
        }
        Authorization(Inner::Bearer(token.into()))
    }

    /// Your own check over the request headers (sessions, mTLS headers, ...).
    pub fn check(f: impl Fn(&HeaderMap) -> bool + Send + Sync + 'static) -> Self {
        Authorization(Inner::Check(Arc::new(f)))
    }

    /// Whether the request's credentials are accepted.
    fn accepts(&self, headers: &HeaderMap) -> bool {
        match &self.0 {
            Inner::Nobody => false,
            Inner::Bearer(token) => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_token)
                .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
            Inner::Check(check) => check(headers),
        }
    }

    pub(super) fn allows_write(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if matches!(self.0, Inner::Nobody) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this API is read-only",
            ));
        }
        self.allows_read(headers)
    }

    pub(super) fn allows_read(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.accepts(headers) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong credentials",
            ))
        }
    }
}

/// The credentials of `Bearer <token>`, the scheme matched in any case.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Inner::Nobody => "read-only",
            Inner::Bearer(_) => "bearer",
            Inner::Check(_) => "check",
        };
        f.debug_tuple("Authorization").field(&kind).finish()
    }
}

/// Compares without leaking, through timing, how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn bearer_needs_the_exact_token_in_any_case_of_scheme_and_an_empty_one_allows_nobody() {
        let auth = Authorization::bearer("t0ken");
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", value.parse().unwrap());
            auth.accepts(&headers)
        };
        assert!(!auth.accepts(&HeaderMap::new()));
        for good in ["Bearer t0ken", "bearer t0ken", "BEARER t0ken", "bEaReR  t0ken"] {
            assert!(with(good), "{good}");
        }
        for bad in [
            "Bearer t0keN",
            "Bearer",
            "Bearer ",
            "Basic t0ken",
            "Bearert0ken",
            "t0ken",
            "Bearer t0ken2",
        ] {
            assert!(!with(bad), "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert!(!Authorization::bearer("").accepts(&headers));
    }
}
