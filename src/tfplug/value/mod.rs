//! The cty value model (types, values, unknowns with refinements, attribute
//! paths) and the two wire encodings Terraform uses for it in the plugin
//! protocol: MessagePack for DynamicValue, JSON for raw state and as the
//! DynamicValue fallback. Wire rules follow go-cty and Terraform's
//! `docs/plugin-protocol/object-wire-format.md`.
//!
//! Decoders treat their input as hostile: they return errors rather than
//! panicking, allocate only in proportion to the bytes actually present, and
//! refuse nesting deeper than [`MAX_DEPTH`].

mod json;
mod msgpack;
mod number;
mod path;
mod types;
#[allow(clippy::module_inception)] // `value::value` keeps the Value type in its own file
mod value;

#[cfg(test)]
mod tests;

pub use number::{Number, ParseNumberError};
pub use path::{AttrPath, PathStep};
pub use types::{ObjectType, Type};
pub use value::{Refinements, Value};

/// Deepest nesting of values, types and JSON documents that the codecs accept.
/// Real schemas stay far below it; the bound keeps recursion on hostile input
/// from exhausting the stack.
pub const MAX_DEPTH: usize = 100;

/// Why a value could not be decoded, encoded or checked. Messages name the
/// place (an [`AttrPath`]) and types, never the content of a value, because
/// values may be secrets.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("at {}: expected {expected}, found {found}", .path.describe())]
    TypeMismatch {
        path: AttrPath,
        expected: String,
        found: &'static str,
    },
    #[error("at {}: value does not conform: expected {expected}, found {found}", .path.describe())]
    NonConforming {
        path: AttrPath,
        expected: String,
        found: &'static str,
    },
    /// `path` ends with the missing attribute.
    #[error("at {}: required attribute is missing", .path.describe())]
    MissingAttribute { path: AttrPath },
    /// `path` ends with the attribute the type does not declare.
    #[error("at {}: unsupported attribute", .path.describe())]
    UnexpectedAttribute { path: AttrPath },
    #[error("at {}: duplicate key", .path.describe())]
    DuplicateKey { path: AttrPath },
    #[error("at {}: tuple needs {expected} elements, found {found}", .path.describe())]
    TupleLength {
        path: AttrPath,
        expected: usize,
        found: u64,
    },
    #[error("at {}: invalid number", .path.describe())]
    InvalidNumber { path: AttrPath },
    #[error("at {}: string is not valid UTF-8", .path.describe())]
    InvalidUtf8 { path: AttrPath },
    #[error("at {}: invalid dynamic value: {reason}", .path.describe())]
    InvalidDynamic {
        path: AttrPath,
        reason: &'static str,
    },
    #[error("at {}: invalid type description: {reason}", .path.describe())]
    InvalidType {
        path: AttrPath,
        reason: &'static str,
    },
    #[error("at {}: invalid unknown-value refinement: {reason}", .path.describe())]
    Refinement {
        path: AttrPath,
        reason: &'static str,
    },
    #[error("at {}: nesting deeper than {limit} levels", .path.describe())]
    TooDeep { path: AttrPath, limit: usize },
    #[error("at {}: malformed msgpack: {reason}", .path.describe())]
    Msgpack {
        path: AttrPath,
        reason: &'static str,
    },
    #[error("at {}: malformed JSON at byte {offset}: {reason}", .path.describe())]
    Json {
        path: AttrPath,
        offset: usize,
        reason: &'static str,
    },
    #[error("{count} unexpected bytes after the encoded value")]
    TrailingBytes { count: usize },
    #[error("at {}: unknown values cannot be encoded as JSON", .path.describe())]
    UnknownInJson { path: AttrPath },
    #[error("at {}: infinite numbers cannot be encoded as JSON", .path.describe())]
    InfinityInJson { path: AttrPath },
    #[error("at {}: too large to encode", .path.describe())]
    TooLarge { path: AttrPath },
}

impl ValueError {
    /// Where the error happened, if it is tied to a place in the value.
    pub fn path(&self) -> Option<&AttrPath> {
        match self {
            ValueError::TrailingBytes { .. } => None,
            ValueError::TypeMismatch { path, .. }
            | ValueError::NonConforming { path, .. }
            | ValueError::MissingAttribute { path }
            | ValueError::UnexpectedAttribute { path }
            | ValueError::DuplicateKey { path }
            | ValueError::TupleLength { path, .. }
            | ValueError::InvalidNumber { path }
            | ValueError::InvalidUtf8 { path }
            | ValueError::InvalidDynamic { path, .. }
            | ValueError::InvalidType { path, .. }
            | ValueError::Refinement { path, .. }
            | ValueError::TooDeep { path, .. }
            | ValueError::Msgpack { path, .. }
            | ValueError::Json { path, .. }
            | ValueError::UnknownInJson { path }
            | ValueError::InfinityInJson { path }
            | ValueError::TooLarge { path } => Some(path),
        }
    }
}

/// Decodes a msgpack DynamicValue of type `ty`.
pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, ValueError> {
    msgpack::decode(bytes, ty)
}

/// Encodes `v` as msgpack; fails if `v` does not conform to `ty`.
pub fn encode_msgpack(v: &Value, ty: &Type) -> Result<Vec<u8>, ValueError> {
    msgpack::encode(v, ty)
}

/// Decodes JSON of type `ty`. Object attributes missing from the JSON become
/// null (state written by an older schema may lack them); attributes the type
/// does not declare are an error.
pub fn decode_json(bytes: &[u8], ty: &Type) -> Result<Value, ValueError> {
    let mode = json::Mode {
        ignore_unknown_attributes: false,
        plain_dynamic: false,
    };
    json::decode(bytes, ty, mode)
}

/// Like [`decode_json`], but drops object attributes the type does not
/// declare, at any depth: for upgrading state written before a schema change
/// removed them.
pub fn decode_json_lenient(bytes: &[u8], ty: &Type) -> Result<Value, ValueError> {
    let mode = json::Mode {
        ignore_unknown_attributes: true,
        plain_dynamic: false,
    };
    json::decode(bytes, ty, mode)
}

/// Encodes `v` as JSON; fails on unknowns, infinities, and values that do not
/// conform to `ty`.
pub fn encode_json(v: &Value, ty: &Type) -> Result<Vec<u8>, ValueError> {
    json::encode(v, ty)
}
