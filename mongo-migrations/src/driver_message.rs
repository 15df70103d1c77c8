//! The driver's errors as one plain line, for every message that quotes
//! the server: a leaf module, so the error types and the schema
//! operations both use it without importing each other.

/// The driver's message without its kind's prefix and debug dump.
pub(crate) fn plain(e: &mongodb::error::Error) -> String {
    use mongodb::error::ErrorKind;
    match e.kind.as_ref() {
        ErrorKind::InvalidArgument { message, .. }
        | ErrorKind::Authentication { message, .. }
        | ErrorKind::ServerSelection { message, .. } => message.clone(),
        ErrorKind::Io(io) => io.to_string(),
        ErrorKind::Command(c) => format!("{} ({}, code {})", c.message, c.code_name, c.code),
        _ => e.to_string(),
    }
}
